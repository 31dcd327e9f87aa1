#include "ngx_mcp_session_events.hpp"

#include "ngx_mcp_session_zone.hpp"

#include <algorithm>
#include <cstring>

namespace mcp_ngx {

using mcp_session::event_kind;
using mcp_session::session_key;
using mcp_session::unix_ms;

namespace {

bool live(const session_record* record, const zone_conf& zone, unix_ms now)
{
    return !mcp_session::is_expired(times_of(record), zone.policy, now);
}

}  // namespace

publish_outcome event_store::publish(const session_key& key, event_kind kind, std::string_view payload, unix_ms now,
                                     std::string_view or_backend_id)
{
    publish_outcome outcome;
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    if (record == nullptr && !or_backend_id.empty()) {
        record = zone.find_by_backend_id(or_backend_id);
    }
    if (record == nullptr) {
        outcome.result = publish_result::unknown;
        return outcome;
    }
    if (!live(record, zone_, now)) {
        zone.remove(record);
        ++zone.shared().counters.expired_lazily;
        outcome.result = publish_result::expired;
        return outcome;
    }
    // An event takes expired memory or its own session's oldest events,
    // never another live session's place; the init marker is part of
    // opening the session's own stream (mcp_session/room.hpp).
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

    const mcp_session::ring_window window = locked_zone::window_of(stream);
    event_slot& slot = locked_zone::slots_of(stream)[window.slot(window.next_id)];
    zone.drop_event(slot);  // the oldest event, when the ring is full
    std::memcpy(data, payload.data(), payload.size());
    slot.id = stream->next_id++;
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
    for (std::uint64_t id = plan.first_id; plan.has_events() && id <= plan.last_id; ++id) {
        const event_slot& slot = slots[window.slot(id)];
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
    return outcome;
}

}  // namespace mcp_ngx
