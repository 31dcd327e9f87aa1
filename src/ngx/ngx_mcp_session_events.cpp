#include "ngx_mcp_session_events.hpp"

#include "ngx_mcp_session_zone.hpp"

#include <algorithm>
#include <cstring>

#include <signal.h>

namespace mcp_ngx {

using mcp_session::event_kind;
using mcp_session::session_key;
using mcp_session::unix_ms;

namespace {

// What a POST stream's event needs besides its fields: "id: P.k" (two
// 20-digit numbers at most) and a lost-events notice before it.
constexpr std::size_t post_event_framing = 2 * mcp_session::max_framing_bytes;

post_stream_entry* post_entry_of(session_stream* stream, std::uint64_t post_stream)
{
    for (post_stream_entry& post : stream->posts) {
        if (post.stream == post_stream) {
            return &post;
        }
    }
    return nullptr;
}

// A free entry, else the oldest whose answer has been read (its resuming
// GET, if any, is woken to end after what the ring holds of it).
post_stream_entry* entry_for_new_post_stream(locked_zone& zone, session_stream* stream)
{
    post_stream_entry* chosen = nullptr;
    for (post_stream_entry& post : stream->posts) {
        if (post.stream == 0) {
            return &post;
        }
        if (post.recording == 0 && (chosen == nullptr || post.stream < chosen->stream)) {
            chosen = &post;
        }
    }
    if (chosen != nullptr && chosen->subscriber != 0) {
        --zone.shared().open_streams;
        zone.notify(chosen->subscriber_worker, chosen->subscriber);
    }
    return chosen;
}

// Puts one event into the ring slot of the stream's next id (dropping the
// oldest event when the ring is full); `data` is a slab allocation or null.
event_slot& next_slot(locked_zone& zone, session_stream* stream)
{
    const mcp_session::ring_window window = locked_zone::window_of(stream);
    event_slot& slot = locked_zone::slots_of(stream)[window.slot(window.next_id)];
    zone.drop_event(slot);
    slot.id = stream->next_id++;
    return slot;
}

// Events up to next_index-1 went to the client (indexes beyond u32 are
// never recorded, so the count stops there).
void advance_next_index(post_stream_entry& post, std::uint64_t next_index)
{
    post.next_index = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(std::max<std::uint64_t>(post.next_index, next_index), UINT32_MAX));
}

bool live(const session_record* record, const zone_conf& zone, unix_ms now)
{
    return !mcp_session::is_expired(times_of(record), zone.policy, now);
}

}  // namespace

namespace {

// Puts one event into a live session's ring (the lock held): an event
// takes expired memory or its own session's oldest events, never another
// live session's place; the init marker is part of opening the session's
// own stream (mcp_session/room.hpp).
publish_outcome append_event(locked_zone& zone, session_record* record, event_kind kind, std::string_view payload,
                             unix_ms now)
{
    publish_outcome outcome;
    const mcp_session::room_purpose purpose = mcp_session::room_purpose_of(kind);
    room_report room;
    session_stream* stream = zone.stream_of(record, purpose, now, room);
    void* data = stream == nullptr ? nullptr : zone.allocate_with_room(payload.size() + 1, purpose, record, &now, room);
    if (data == nullptr) {
        const bool marker = kind == event_kind::init || kind == event_kind::heartbeat;
        ++(marker ? zone.shared().counters.markers_no_room : zone.shared().counters.publish_no_room);
        outcome.result = publish_result::no_memory;
        return outcome;
    }

    event_slot& slot = next_slot(zone, stream);
    std::memcpy(data, payload.data(), payload.size());
    slot.data = static_cast<u_char*>(data);
    slot.size = static_cast<std::uint32_t>(payload.size());
    slot.kind = kind;

    if (stream->subscriber != 0) {
        zone.notify(stream->subscriber_worker, stream->subscriber);
    }
    if (kind == event_kind::heartbeat) {
        ++zone.shared().counters.heartbeats;
    } else {
        ++zone.shared().counters.events_published;
    }
    outcome.result = publish_result::published;
    outcome.id = slot.id;
    return outcome;
}

// The live session a publish names (nginx's id, else the backend's own),
// or null with `result` saying why (an expired one is removed now).
session_record* publish_target(locked_zone& zone, const session_key& key, std::string_view or_backend_id, unix_ms now,
                               publish_result& result)
{
    session_record* record = zone.find(key);
    if (record == nullptr && !or_backend_id.empty()) {
        record = zone.find_by_backend_id(or_backend_id);
    }
    if (record == nullptr) {
        result = publish_result::unknown;
        return nullptr;
    }
    if (!live(record, zone.conf(), now)) {
        zone.remove(record);
        ++zone.shared().counters.expired_lazily;
        result = publish_result::expired;
        return nullptr;
    }
    return record;
}

}  // namespace

publish_outcome event_store::publish(const session_key& key, event_kind kind, std::string_view payload, unix_ms now,
                                     std::string_view or_backend_id)
{
    publish_outcome outcome;
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = publish_target(zone, key, or_backend_id, now, outcome.result);
    return record == nullptr ? outcome : append_event(zone, record, kind, payload, now);
}

subscription event_store::subscribe(const session_key& key, ngx_int_t worker)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    if (record == nullptr) {
        subscription gone;
        gone.session_gone = true;  // ended (e.g. DELETE in another worker) since validation
        return gone;
    }
    // The session's own stream may push out a few sessions nobody used.
    room_report room;
    session_stream* stream = zone.stream_of(record, mcp_session::room_purpose::stream, now_ms(), room);
    if (stream == nullptr) {
        ++zone.shared().counters.streams_no_room;
        return {};
    }
    if (stream->subscriber != 0) {
        zone.notify(stream->subscriber_worker, stream->subscriber);  // taken over
    }
    if (stream->subscriber == 0) {
        ++zone.shared().open_streams;
    }
    stream->subscriber = ++zone.shared().next_subscription;
    stream->subscriber_worker = static_cast<std::int32_t>(worker);
    stream->listened_elsewhere = 0;
    return {stream->subscriber, stream->next_id - 1, stream->delivered,
            mcp_session::expires_at(times_of(record), zone_.policy), false};
}

unix_ms event_store::expire_or_touch(const session_key& key, unix_ms now)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr) {
        return 0;
    }
    if (!live(record, zone_, now)) {
        tx.zone().remove(record);  // wakes the stream's worker to end it
        ++tx.zone().shared().counters.expired_lazily;
        return 0;
    }
    tx.zone().touch(record, now);
    return mcp_session::expires_at(times_of(record), zone_.policy);
}

void event_store::unsubscribe(const session_key& key, std::uint64_t token, std::uint64_t sent)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record != nullptr && record->stream != nullptr && record->stream->subscriber == token) {
        record->stream->delivered = std::max(record->stream->delivered, sent);
        record->stream->subscriber = 0;
        record->stream->subscriber_worker = -1;
        --tx.zone().shared().open_streams;
        tx.zone().release_idle_ring(record);  // a stream that carried only markers leaves nothing behind
    }
}

bool event_store::open_inbox(ngx_int_t worker)
{
    zone_transaction tx(zone_);
    return tx.zone().open_inbox(worker);
}

std::uint64_t event_store::begin_cycle()
{
    zone_transaction tx(zone_);
    return ++tx.zone().shared().cycles;
}

std::int64_t event_store::claim_worker_number(ngx_int_t worker, std::uint64_t cycle, std::int64_t pid,
                                              std::size_t& released)
{
    released = 0;
    if (worker < 0 || static_cast<std::size_t>(worker) >= inbox_workers) {
        return 0;  // beyond the tracked numbers: such a worker's streams are reclaimed by takeover only
    }
    zone_transaction tx(zone_);
    worker_tenant& tenant = tx.zone().shared().tenants[worker];
    std::int64_t dead = 0;
    if (tenant.cycle == cycle && tenant.pid != 0 && tenant.pid != pid) {
        dead = tenant.pid;
        // Walks every session: rare (a crash) and done before this worker
        // takes its first request.
        released = tx.zone().release_streams_of(static_cast<std::int32_t>(worker));
    }
    tenant.cycle = cycle;
    tenant.pid = pid;
    return dead;
}

bool event_store::drain(ngx_int_t worker, std::vector<std::uint64_t>& tokens)
{
    zone_transaction tx(zone_);
    return tx.zone().drain_inbox(worker, tokens);
}

bool event_store::beat(const session_key& key, unix_ms now)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr || !live(record, zone_, now)) {
        return false;
    }
    tx.zone().touch(record, now);
    ++tx.zone().shared().counters.heartbeats;
    return true;
}

read_outcome event_store::read(const session_key& key, std::uint64_t token, std::uint64_t cursor,
                               std::uint64_t replay_until, const mcp_session::wire_form& form, std::string& out)
{
    read_outcome outcome;
    outcome.last_id = cursor;
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr || record->stream == nullptr) {
        outcome.state = stream_state::ended;
        return outcome;
    }
    session_stream* stream = record->stream;
    if (stream->subscriber != token) {
        outcome.state = stream_state::taken_over;
        return outcome;
    }
    outcome.state = stream_state::open;
    // A stream reads only once its previous batch is written: everything
    // up to `cursor` left on this stream, and a later GET without
    // Last-Event-ID does not get it again (a message never goes out on
    // two streams). A batch still in flight when a worker dies is not
    // counted, so it is not lost to such a GET.
    stream->delivered = std::max(stream->delivered, cursor);

    const mcp_session::ring_window window = locked_zone::window_of(stream);
    const mcp_session::replay_plan plan = mcp_session::plan_replay(cursor, window);
    outcome.dropped = plan.dropped;
    outcome.first_id = plan.first_id;
    if (plan.dropped > 0) {
        // One notice stands for the gap; its id is the last one lost, so a
        // client resuming from it gets exactly what follows.
        mcp_session::append_lagged(out, form, plan.first_id - 1, plan.dropped);
        outcome.last_id = plan.first_id - 1;
        ++tx.zone().shared().counters.lagged_notices;
    }
    const event_slot* slots = locked_zone::slots_of(stream);
    // Ids the cluster gave events this node will never receive (redis=):
    // one notice for each run of them, as for the ring's own losses.
    std::uint64_t lost_run = 0;
    std::uint64_t lost_first = 0;
    const auto announce_lost = [&] {
        if (lost_run == 0) {
            return true;
        }
        if (out.size() + mcp_session::max_framing_bytes > out.capacity()) {
            return false;
        }
        mcp_session::append_lagged(out, form, outcome.last_id, lost_run);
        ++tx.zone().shared().counters.lagged_notices;
        lost_run = 0;
        return true;
    };
    for (std::uint64_t id = plan.first_id; plan.has_events() && id <= plan.last_id; ++id) {
        const event_slot& slot = slots[window.slot(id)];
        if ((slot.flags & slot_pending) != 0) {
            break;  // not here yet: what follows waits for it
        }
        if ((slot.flags & slot_lost) != 0) {
            if (lost_run == 0 && out.size() + mcp_session::max_framing_bytes > out.capacity()) {
                break;
            }
            lost_first = lost_run == 0 ? id : lost_first;
            ++lost_run;
            outcome.last_id = id;
            continue;
        }
        if (slot.post_stream != 0) {
            if (lost_run == 0) {
                outcome.last_id = id;  // a POST stream's: never sent on this one
            }
            continue;
        }
        if (!announce_lost()) {
            break;
        }
        const std::size_t framed = slot.size + mcp_session::max_framing_bytes;
        if (out.size() + framed > out.capacity()) {
            if (outcome.events == 0) {
                outcome.needed = out.size() + framed;  // larger than a batch: grow, read again
            }
            break;  // the rest waits until this batch is written
        }
        mcp_session::append_message(out, form, slot.id, slot.kind,
                                    std::string_view(reinterpret_cast<const char*>(slot.data), slot.size));
        outcome.last_id = id;
        ++outcome.events;
        if (id <= replay_until) {
            ++tx.zone().shared().counters.events_replayed;
        }
    }
    if (!announce_lost()) {
        outcome.last_id = lost_first - 1;  // announced with the next batch
    }
    return outcome;
}

std::uint64_t event_store::open_post_stream(const session_key& key, ngx_int_t worker, unix_ms now)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    if (record == nullptr || !live(record, zone_, now)) {
        return 0;  // the answer passes unrecorded; the next request learns the session's fate
    }
    room_report room;
    session_stream* stream = zone.stream_of(record, mcp_session::room_purpose::stream, now, room);
    post_stream_entry* post = stream == nullptr ? nullptr : entry_for_new_post_stream(zone, stream);
    if (post == nullptr) {
        ++zone.shared().counters.post_streams_unrecorded;
        return 0;
    }
    // The stream's number is the id of a marker slot: ids are never
    // reused, so neither is P, also after the ring is given back.
    event_slot& marker = next_slot(zone, stream);
    marker.kind = event_kind::init;  // no message: the ring may still be given back
    marker.post_stream = marker.id;
    *post = post_stream_entry{};
    post->stream = marker.id;
    post->next_index = 1;
    post->recording = 1;
    post->recorder_worker = static_cast<std::int32_t>(worker);
    post->subscriber_worker = -1;
    ++zone.shared().counters.post_streams_recorded;
    return post->stream;
}

void event_store::record_post_events(const session_key& key, std::uint64_t post_stream,
                                     const mcp_session::relayed_batch& events, std::uint64_t next_index,
                                     unix_ms now)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    session_stream* stream = record == nullptr ? nullptr : record->stream;
    post_stream_entry* post = stream == nullptr ? nullptr : post_entry_of(stream, post_stream);
    if (post == nullptr) {
        return;  // the session ended (its resumer with it)
    }
    for (const mcp_session::relayed_event& event : events) {
        // After the response no resumer sends anything; beyond u32 no index fits.
        if (post->response_index != 0 || event.index > UINT32_MAX) {
            ++zone.shared().counters.post_events_unrecorded;
            continue;
        }
        room_report room;
        void* data = zone.allocate_with_room(event.fields.size() + 1, mcp_session::room_purpose::event, record, &now,
                                             room);
        if (data == nullptr) {
            ++zone.shared().counters.post_events_unrecorded;
            continue;  // a resuming client is told it is lost
        }
        // Dropping the session's own oldest events may have taken the ring's
        // slot positions along: the slot is taken only now.
        event_slot& slot = next_slot(zone, stream);
        std::memcpy(data, event.fields.data(), event.fields.size());
        slot.data = static_cast<u_char*>(data);
        slot.size = static_cast<std::uint32_t>(event.fields.size());
        slot.kind = event_kind::message;
        slot.post_stream = post_stream;
        slot.post_index = static_cast<std::uint32_t>(event.index);
        slot.flags = slot_framed | (event.response ? slot_response : 0);
        if (event.response && post->response_index == 0) {
            post->response_index = slot.post_index;
        }
        ++zone.shared().counters.post_events_recorded;
    }
    advance_next_index(*post, next_index);
    if (post->subscriber != 0) {
        zone.notify(post->subscriber_worker, post->subscriber);
    }
}

void event_store::close_post_stream(const session_key& key, std::uint64_t post_stream, std::uint64_t next_index,
                                    std::size_t unrecorded)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    zone.shared().counters.post_events_unrecorded += unrecorded;
    session_record* record = zone.find(key);
    session_stream* stream = record == nullptr ? nullptr : record->stream;
    post_stream_entry* post = stream == nullptr ? nullptr : post_entry_of(stream, post_stream);
    if (post == nullptr) {
        return;
    }
    post->recording = 0;
    advance_next_index(*post, next_index);
    if (post->subscriber != 0) {
        zone.notify(post->subscriber_worker, post->subscriber);  // to end once it has sent the rest
    }
    zone.release_idle_ring(record);
}

namespace {

// A GET resuming POST stream P gets a token and, when P has an entry,
// becomes its only resumer (a previous one is woken to end).
subscription subscribe_resumer(locked_zone& zone, session_record* record, post_stream_entry* post, ngx_int_t worker)
{
    subscription subscribed;
    subscribed.token = ++zone.shared().next_subscription;
    subscribed.expires_at = mcp_session::expires_at(times_of(record), zone.conf().policy);
    ++zone.shared().counters.post_stream_resumes;
    if (post == nullptr) {
        return subscribed;
    }
    if (post->subscriber != 0) {
        zone.notify(post->subscriber_worker, post->subscriber);  // taken over
    } else {
        ++zone.shared().open_streams;
    }
    post->subscriber = subscribed.token;
    post->subscriber_worker = static_cast<std::int32_t>(worker);
    return subscribed;
}

// A resume of POST stream P in a redis= zone: P is numbered by the node
// that recorded it, and its entry here is learned from what the channel
// and the catch-up bring (mirror() keeps it up to date).
subscription subscribe_mirrored_post_stream(locked_zone& zone, session_record* record, std::uint64_t post_stream,
                                            ngx_int_t worker)
{
    subscription subscribed;
    room_report room;
    session_stream* stream = zone.stream_of(record, mcp_session::room_purpose::stream, now_ms(), room);
    if (stream == nullptr || post_stream == 0) {
        return subscribed;
    }
    post_stream_entry* post = post_entry_of(stream, post_stream);
    if (post == nullptr) {
        post = entry_for_new_post_stream(zone, stream);
        if (post == nullptr) {
            return subscribed;  // 8 answers of the session still being read: no room to follow a ninth
        }
        *post = post_stream_entry{};
        post->stream = post_stream;
        post->next_index = 1;
        post->recording = 1;  // until the catch-up or the channel says it ended
        post->recorder_worker = -1;
        post->subscriber_worker = -1;
    }
    return subscribe_resumer(zone, record, post, worker);
}

// A mirrored event of POST stream P tells its entry how far it got.
void learn_post_stream(session_stream* stream, const mcp_session::shared_event& event)
{
    post_stream_entry* post = post_entry_of(stream, event.post_stream);
    if (post == nullptr || post->recorder_worker != -1) {
        return;  // not followed here, or recorded here (its recorder keeps it)
    }
    if ((event.flags & mcp_session::shared_flag_closed) != 0) {
        post->recording = 0;
        advance_next_index(*post, event.post_index);
        return;
    }
    if (event.kind == event_kind::init) {
        return;  // the marker that opened it
    }
    advance_next_index(*post, std::uint64_t{event.post_index} + 1);
    if ((event.flags & mcp_session::shared_flag_response) != 0 && post->response_index == 0) {
        post->response_index = event.post_index;
    }
}

}  // namespace

subscription event_store::subscribe_post_stream(const session_key& key, std::uint64_t post_stream, ngx_int_t worker,
                                                bool mirrored)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    subscription subscribed;
    if (record == nullptr) {
        subscribed.session_gone = true;
        return subscribed;
    }
    if (mirrored) {
        return subscribe_mirrored_post_stream(zone, record, post_stream, worker);
    }
    const std::uint64_t next_id = record->stream != nullptr ? record->stream->next_id : record->next_event_id;
    if (post_stream == 0 || post_stream >= next_id) {
        return subscribed;  // no stream of this session has that number
    }
    post_stream_entry* post = record->stream == nullptr ? nullptr : post_entry_of(record->stream, post_stream);
    if (post == nullptr && record->stream != nullptr) {
        // The ring still holding id P shows what it was: a POST stream's
        // opening marker, or an event of another stream.
        const mcp_session::ring_window window = locked_zone::window_of(record->stream);
        if (post_stream >= window.oldest() &&
            locked_zone::slots_of(record->stream)[window.slot(post_stream)].post_stream != post_stream) {
            return subscribed;
        }
    }
    // Without an entry (forgotten), the read sends what the ring still holds of it, and ends.
    return subscribe_resumer(zone, record, post, worker);
}

void event_store::unsubscribe_post_stream(const session_key& key, std::uint64_t post_stream, std::uint64_t token)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    post_stream_entry* post = record == nullptr || record->stream == nullptr
                                  ? nullptr
                                  : post_entry_of(record->stream, post_stream);
    if (post != nullptr && post->subscriber == token) {
        post->subscriber = 0;
        post->subscriber_worker = -1;
        --tx.zone().shared().open_streams;
        tx.zone().release_idle_ring(record);
    }
}

read_outcome event_store::read_post_stream(const session_key& key, std::uint64_t post_stream, std::uint64_t token,
                                           std::uint64_t cursor, const mcp_session::wire_form& form, std::string& out)
{
    read_outcome outcome;
    outcome.last_id = cursor;
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr || record->stream == nullptr) {
        return outcome;  // ended
    }
    session_stream* stream = record->stream;
    const post_stream_entry* post = post_entry_of(stream, post_stream);
    if (post != nullptr && post->subscriber != token) {
        outcome.state = stream_state::taken_over;
        return outcome;
    }
    outcome.state = stream_state::open;
    const bool seed = form.vocabulary == mcp_session::stream_vocabulary::seed;
    auto lost_up_to = [&](std::uint64_t last_lost) {
        mcp_session::append_post_stream_lagged(out, seed, form.priming, post_stream, last_lost, last_lost - cursor);
        cursor = outcome.last_id = last_lost;
        ++tx.zone().shared().counters.lagged_notices;
    };
    // The stream's events are in the ring in their order, among others'.
    const mcp_session::ring_window window = locked_zone::window_of(stream);
    const event_slot* slots = locked_zone::slots_of(stream);
    bool answered = false;
    for (std::uint64_t id = window.oldest(); id < window.next_id && !answered; ++id) {
        const event_slot& slot = slots[window.slot(id)];
        if ((slot.flags & slot_pending) != 0) {
            return outcome;  // may be one of this stream's (redis=): wait for it
        }
        if (slot.post_stream != post_stream || (slot.flags & slot_framed) == 0 || slot.post_index <= cursor) {
            continue;
        }
        const std::size_t framed = slot.size + post_event_framing;
        if (out.size() + framed > out.capacity()) {
            if (outcome.events == 0) {
                outcome.needed = out.size() + framed;
            }
            return outcome;  // the rest after this batch is written
        }
        if (slot.post_index > cursor + 1) {
            lost_up_to(slot.post_index - 1);
        }
        out += "id: ";
        mcp_session::append_post_event_id(out, post_stream, slot.post_index);
        out += '\n';
        out.append(reinterpret_cast<const char*>(slot.data), slot.size);
        out += '\n';
        cursor = outcome.last_id = slot.post_index;
        ++outcome.events;
        ++tx.zone().shared().counters.events_replayed;
        answered = (slot.flags & slot_response) != 0;
    }
    // Done once the response went out, or the answer ended (or was
    // forgotten) and everything the ring held of it did.
    const bool recording = post != nullptr && post->recording != 0;
    const std::uint64_t response = post != nullptr ? post->response_index : 0;
    const bool done = answered || (response != 0 && cursor >= response) || !recording;
    if (!done) {
        return outcome;
    }
    const std::uint64_t last = response != 0 ? response : (post != nullptr ? post->next_index - 1 : cursor);
    if (cursor < last && out.size() + post_event_framing > out.capacity()) {
        return outcome;  // the notice goes into the next batch
    }
    if (cursor < last) {
        lost_up_to(last);
    }
    if (outcome.events == 0 && out.empty()) {
        outcome.state = stream_state::ended;
    }
    return outcome;
}

event_store::backend_stream_claim event_store::claim_backend_stream(const session_key& key, std::int64_t pid)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr || !live(record, zone_, now_ms())) {
        return backend_stream_claim::gone;
    }
    if ((record->flags & record_no_backend_stream) != 0) {
        return backend_stream_claim::absent;
    }
    session_stream* stream = record->stream;
    if (stream == nullptr) {
        return backend_stream_claim::gone;  // no ring: no client stream to feed either
    }
    const std::int64_t holder = stream->backend_stream_holder;
    if (holder == pid) {
        return backend_stream_claim::held_here;
    }
    // A holder that died (a crash, or an old cycle's worker that could not
    // say goodbye) leaves its claim behind: a pid no process has is free,
    // and so is one of another user's process (workers share one user).
    if (holder != 0 && kill(static_cast<pid_t>(holder), 0) == 0) {
        return backend_stream_claim::held_elsewhere;
    }
    stream->backend_stream_holder = pid;
    return backend_stream_claim::claimed;
}

void event_store::release_backend_stream(const session_key& key, std::int64_t pid, bool absent)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    session_stream* stream = record == nullptr ? nullptr : record->stream;
    if (stream == nullptr || stream->backend_stream_holder != pid) {
        return;
    }
    stream->backend_stream_holder = 0;
    if (absent) {
        record->flags |= record_no_backend_stream;
    }
    tx.zone().release_idle_ring(record);
}

std::optional<bool> event_store::backend_stream_listened(const session_key& key, unix_ms now)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr || !live(record, zone_, now)) {
        return std::nullopt;
    }
    const session_stream* stream = record->stream;
    if (stream != nullptr && stream->subscriber == 0 && stream->listened_elsewhere != 0) {
        return std::nullopt;  // the client's stream is on another node now, and that node holds the backend's
    }
    return stream != nullptr && stream->subscriber != 0;
}

void event_store::record_backend_messages(const session_key& key, const std::vector<std::string>& messages,
                                          std::size_t oversized, unix_ms now)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    mcp_session::zone_counters& counters = zone.shared().counters;
    counters.backend_stream_events_unrecorded += oversized;
    session_record* record = zone.find(key);
    if (record == nullptr) {
        return;  // the holding's next check ends it
    }
    if (!live(record, zone_, now)) {
        zone.remove(record);  // as publish() does
        ++counters.expired_lazily;
        return;
    }
    for (const std::string& message : messages) {
        if (append_event(zone, record, event_kind::message, message, now).result == publish_result::published) {
            ++counters.backend_stream_events;
        } else {
            ++counters.backend_stream_events_unrecorded;  // no room
        }
    }
}

void event_store::note_backend_stream_opened()
{
    zone_transaction tx(zone_);
    ++tx.zone().shared().counters.backend_streams_opened;
}

}  // namespace mcp_ngx

namespace mcp_ngx {

namespace {

// Wakes whoever streams what `slot` belongs to (the lock held).
void wake_listeners_of(locked_zone& zone, session_stream* stream, const event_slot& slot)
{
    if (stream->subscriber != 0) {
        zone.notify(stream->subscriber_worker, stream->subscriber);
    }
    post_stream_entry* post = slot.post_stream != 0 ? post_entry_of(stream, slot.post_stream) : nullptr;
    if (post != nullptr && post->subscriber != 0) {
        zone.notify(post->subscriber_worker, post->subscriber);
    }
}

// Opens the ring's ids up to `id` (the cluster gave them out): those not
// received yet become holes. An id further ahead than the ring holds
// skips the ring forward.
void open_ids_up_to(locked_zone& zone, session_stream* stream, std::uint64_t id, std::uint8_t hole = slot_pending)
{
    if (id - stream->next_id >= stream->capacity) {
        event_slot* slots = locked_zone::slots_of(stream);
        for (std::uint32_t i = 0; i < stream->capacity; ++i) {
            zone.drop_event(slots[i]);
        }
        stream->next_id = id - stream->capacity + 1;
    }
    while (stream->next_id <= id) {
        next_slot(zone, stream).flags = stream->next_id == id + 1 ? slot_pending : hole;
    }
}

}  // namespace

event_store::mirror_result event_store::mirror(const session_key& key, const mcp_session::shared_event& event,
                                               unix_ms now, bool in_order)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    mcp_session::zone_counters& counters = zone.shared().counters;
    session_record* record = zone.find(key);
    if (record == nullptr || !live(record, zone_, now)) {
        return mirror_result::gone;
    }
    room_report room;
    session_stream* stream = zone.stream_of(record, mcp_session::room_purpose::stream, now, room);
    if (stream == nullptr) {
        ++counters.streams_no_room;
        return mirror_result::no_room;
    }
    if (event.id < stream->next_id) {
        const mcp_session::ring_window window = locked_zone::window_of(stream);
        const event_slot& slot = locked_zone::slots_of(stream)[window.slot(event.id)];
        if (event.id < window.oldest()) {
            return mirror_result::too_old;
        }
        if (slot.id != event.id || (slot.flags & slot_pending) == 0) {
            return mirror_result::known;  // another worker of this node received it too
        }
    } else {
        open_ids_up_to(zone, stream, event.id, in_order ? slot_lost : slot_pending);
    }
    const bool marker = event.kind == event_kind::init;
    void* data = nullptr;
    if (!marker) {
        data = zone.allocate_with_room(event.payload.size() + 1, mcp_session::room_purpose::event, record, &now, room);
    }
    // Making room may have dropped the session's oldest events, this hole too.
    const mcp_session::ring_window window = locked_zone::window_of(stream);
    event_slot& slot = locked_zone::slots_of(stream)[window.slot(event.id)];
    if (event.id < window.oldest() || slot.id != event.id) {
        if (data != nullptr) {
            ngx_slab_free_locked(zone_.pool, data);
        }
        return mirror_result::too_old;
    }
    slot.post_stream = event.post_stream;
    slot.post_index = event.post_index;
    slot.kind = event.kind;
    if (!marker && data == nullptr) {
        slot.flags = slot_lost;  // announced to the stream, not waited for
        ++counters.publish_no_room;
        wake_listeners_of(zone, stream, slot);
        return mirror_result::no_room;
    }
    if (data != nullptr) {
        std::memcpy(data, event.payload.data(), event.payload.size());
        slot.data = static_cast<u_char*>(data);
        slot.size = static_cast<std::uint32_t>(event.payload.size());
    }
    slot.flags = static_cast<std::uint8_t>(
        ((event.flags & mcp_session::shared_flag_framed) != 0 ? slot_framed : 0) |
        ((event.flags & mcp_session::shared_flag_response) != 0 ? slot_response : 0));
    ++counters.shared_events_mirrored;
    record->cluster_floor = std::max(record->cluster_floor, event.id);
    if (event.post_stream != 0) {
        learn_post_stream(stream, event);
    }
    wake_listeners_of(zone, stream, slot);
    return mirror_result::stored;
}

void event_store::settle_mirror(const session_key& key, std::uint64_t up_to)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    session_stream* stream = record == nullptr ? nullptr : record->stream;
    if (stream == nullptr) {
        return;
    }
    if (up_to >= stream->next_id) {
        open_ids_up_to(zone, stream, up_to);
    }
    const mcp_session::ring_window window = locked_zone::window_of(stream);
    event_slot* slots = locked_zone::slots_of(stream);
    bool settled = false;
    for (std::uint64_t id = window.oldest(); id < window.next_id && id <= up_to; ++id) {
        event_slot& slot = slots[window.slot(id)];
        if ((slot.flags & slot_pending) != 0) {
            slot.flags = slot_lost;
            settled = true;
        }
    }
    if (!settled) {
        return;
    }
    if (stream->subscriber != 0) {
        zone.notify(stream->subscriber_worker, stream->subscriber);
    }
    for (const post_stream_entry& post : stream->posts) {
        if (post.subscriber != 0) {
            zone.notify(post.subscriber_worker, post.subscriber);
        }
    }
}

publish_result event_store::find_publish_target(session_key& key, std::string_view or_backend_id, unix_ms now)
{
    zone_transaction tx(zone_);
    publish_result result = publish_result::published;
    const session_record* record = publish_target(tx.zone(), key, or_backend_id, now, result);
    if (record != nullptr) {
        key = key_of(record);
    }
    return result;
}

void event_store::settle_post_stream(const session_key& key, std::uint64_t post_stream)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    session_stream* stream = record == nullptr ? nullptr : record->stream;
    post_stream_entry* post = stream == nullptr ? nullptr : post_entry_of(stream, post_stream);
    if (post == nullptr || post->recorder_worker != -1 || post->recording == 0) {
        return;
    }
    const mcp_session::ring_window window = locked_zone::window_of(stream);
    const event_slot* slots = locked_zone::slots_of(stream);
    for (std::uint64_t id = window.oldest(); id < window.next_id; ++id) {
        if (slots[window.slot(id)].post_stream == post_stream) {
            return;  // known: it goes on live until it ends
        }
    }
    post->recording = 0;
}

std::uint64_t event_store::newest_event(const session_key& key)
{
    zone_transaction tx(zone_);
    const session_record* record = tx.zone().find(key);
    if (record == nullptr) {
        return 0;
    }
    const std::uint64_t next = record->stream != nullptr ? record->stream->next_id : record->next_event_id;
    return std::max(next == 0 ? 0 : next - 1, record->cluster_floor);
}

void event_store::note_cluster_id(const session_key& key, std::uint64_t id)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record != nullptr) {
        record->cluster_floor = std::max(record->cluster_floor, id);
    }
}

bool event_store::end_listener(const session_key& key, std::uint64_t token)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    session_stream* stream = record == nullptr ? nullptr : record->stream;
    if (stream == nullptr || stream->subscriber != token) {
        return false;
    }
    zone.notify(stream->subscriber_worker, stream->subscriber);
    stream->subscriber = 0;
    stream->subscriber_worker = -1;
    stream->listened_elsewhere = 1;
    --zone.shared().open_streams;
    ++zone.shared().counters.shared_takeovers;
    return true;
}

}  // namespace mcp_ngx
