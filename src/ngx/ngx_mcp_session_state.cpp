#include "ngx_mcp_session_state.hpp"

#include "ngx_mcp_session_state_files.hpp"
#include "ngx_mcp_session_state_writer.hpp"
#include "ngx_mcp_session_zone.hpp"

#include "mcp_session/index_buckets.hpp"
#include "mcp_session/state_file.hpp"
#include "mcp_session/state_snapshot.hpp"

#include <time.h>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mcp_ngx {

using mcp_session::saved_session;
using mcp_session::state_contents;
using mcp_session::unix_ms;

namespace {

const char* path_of(const zone_conf& zone) { return reinterpret_cast<const char*>(zone.state_path.data); }

// Most sessions a zone of this size could hold: bounds what a file may claim.
std::size_t zone_capacity(const zone_conf& zone) { return zone.shm_zone->shm.size / 64; }

struct adoption {
    std::size_t restored = 0;
    std::size_t expired = 0;
    std::size_t known = 0;    // already in the zone (adopting a newer file)
    std::size_t no_room = 0;
};

// The records just appended to `queue` (the `order` entries of `records`
// not null, ascending by `time_of`) are moved back among the queue's
// older members so the whole queue ascends: one backward walk, a merge.
template <typename TimeOf>
void sink_into_order(ngx_queue_t* queue, const std::vector<session_record*>& records,
                     const std::vector<std::size_t>& order, std::size_t link_offset, TimeOf time_of)
{
    const auto link_of = [&](session_record* r) {
        return reinterpret_cast<ngx_queue_t*>(reinterpret_cast<u_char*>(r) + link_offset);
    };
    const auto record_of = [&](ngx_queue_t* q) {
        return reinterpret_cast<const session_record*>(reinterpret_cast<u_char*>(q) - link_offset);
    };
    for (const std::size_t i : order) {
        if (records[i] != nullptr) {
            ngx_queue_remove(link_of(records[i]));
        }
    }
    ngx_queue_t* cursor = ngx_queue_last(queue);
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        session_record* record = records[*it];
        if (record == nullptr) {
            continue;
        }
        while (cursor != ngx_queue_sentinel(queue) && time_of(record_of(cursor)) > time_of(record)) {
            cursor = ngx_queue_prev(cursor);
        }
        ngx_queue_insert_after(cursor, link_of(record));
    }
}

// Puts the file's sessions into the zone. A fresh zone takes the file's
// binding key, so saved principal/tenant digests still compare; a zone
// with a key of its own skips bound sessions it could not check.
adoption adopt(zone_conf& zone, const state_contents& contents, bool fresh_zone, unix_ms now)
{
    adoption result;
    std::vector<const saved_session*> wanted;
    wanted.reserve(contents.sessions.size());
    for (const saved_session& s : contents.sessions) {
        if (mcp_session::worth_restoring(s, zone.policy, now)) {
            wanted.push_back(&s);
        } else {
            ++result.expired;
        }
    }
    // Both queues are merged in order (a zone adopting a newer file already
    // holds sessions of its own): the sweep and eviction walk them from the
    // oldest end and rely on that order.
    auto order_by = [&](auto time_of) {
        std::vector<std::size_t> order(wanted.size());
        for (std::size_t i = 0; i < order.size(); ++i) {
            order[i] = i;
        }
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return time_of(*wanted[a]) < time_of(*wanted[b]); });
        return order;
    };
    const std::vector<std::size_t> by_creation =
        order_by([&](const saved_session& s) { return mcp_session::restored_times(s.times, now).created_ms; });
    const std::vector<std::size_t> by_access =
        order_by([&](const saved_session& s) { return mcp_session::restored_times(s.times, now).last_access_ms; });
    std::vector<session_record*> records(wanted.size(), nullptr);

    zone_transaction tx(zone);
    locked_zone& z = tx.zone();
    if (fresh_zone) {
        z.shared().hash_seed = contents.header.binding_key;
    }
    const bool same_key = z.shared().hash_seed == contents.header.binding_key;
    for (const std::size_t i : by_creation) {
        const saved_session& s = *wanted[i];
        if (z.find(s.key) != nullptr || ((s.bound & bound_by_cluster_key) == 0 && s.bound != 0 && !same_key)) {
            ++result.known;
            continue;
        }
        session_record* record = z.allocate(s.key);
        if (record == nullptr) {
            ++result.no_room;
            continue;
        }
        z.link_restored(record, mcp_session::restored_times(s.times, now));
        session_extras extras{};
        extras.principal = s.principal;
        extras.tenant = s.tenant;
        extras.bound = s.bound;
        if (!z.set_extras(record, extras, s.backend_id)) {
            z.remove(record);  // a session without its binding must not exist
            ++result.no_room;
            continue;
        }
        // Ids keep increasing; the events themselves were not saved, so a
        // ring made later announces the ids below as lost (no ring now).
        z.restore_event_ids(record, s.next_event_id);
        z.pin(record, s.pinned_server);  // no slot left: balanced again, and pinned by its next answer
        records[i] = record;
        ++result.restored;
    }
    sink_into_order(&z.shared().by_creation, records, by_creation, offsetof(session_record, by_creation),
                    [](const session_record* r) { return r->created_ms; });
    for (const std::size_t i : by_access) {
        if (records[i] != nullptr) {
            z.link_by_last_access(records[i]);
        }
    }
    sink_into_order(&z.shared().by_last_access, records, by_access, offsetof(session_record, by_last_access),
                    [](const session_record* r) { return r->last_access_ms; });
    return result;
}

void remember_file(zone_conf& zone, const file_identity& file)
{
    zone_transaction tx(zone);
    tx.zone().shared().state_file_mtime_ns = file.mtime_ns;
    tx.zone().shared().state_file_size = file.size;
}

bool file_changed_by_another(zone_conf& zone, const file_identity& file)
{
    zone_transaction tx(zone);
    const zone_shared& sh = tx.zone().shared();
    return file.exists && (file.mtime_ns != sh.state_file_mtime_ns || file.size != sh.state_file_size);
}

// Loads the file into the zone and logs the one line that says how it went.
void load(zone_conf& zone, ngx_log_t* log, bool fresh_zone)
{
    const char* path = path_of(zone);
    const state_files& files = *zone.state;
    const file_identity file = identify(files);
    if (!file.exists) {
        return;  // first start, or never saved: not an error
    }
    std::string bytes;
    std::string error;
    state_contents contents;
    const unix_ms now = now_ms();
    const read_outcome read = read_state_file(files, zone.shm_zone->shm.size, bytes, error);
    if (read == read_outcome::missing) {
        return;
    }
    if (read == read_outcome::ok) {
        contents = mcp_session::read_state(bytes, {zone_capacity(zone), key_of(files), now});
        error = contents.error;
    }
    remember_file(zone, file);  // an unusable file is reported once, not every interval
    if (!contents.ok) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "mcp_session zone \"%V\": state file \"%s\" is unusable (%s); %s", &zone.name, path,
                      error.c_str(), fresh_zone ? "starting with an empty zone" : "ignored");
        return;
    }
    const adoption a = adopt(zone, contents, fresh_zone, now);
    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "mcp_session zone \"%V\": %s %uz sessions from \"%s\" (%uz expired, %uz already known, %uz without room)",
                  &zone.name, fresh_zone ? "restored" : "adopted", a.restored, path, a.expired, a.known, a.no_room);
}

// Sessions copied per hold of the zone lock (a fraction of a millisecond
// for a zone of a million), and the pause between two holds: the other
// workers get the lock between slices however busy the saving worker is,
// and a save of a million sessions takes a few seconds.
constexpr std::size_t slice_sessions = 512;
constexpr ngx_msec_t slice_pause_ms = 1;

// Appends one session to the snapshot (under the lock, no allocation).
mcp_session::state_snapshot::added add_record(mcp_session::state_snapshot& snapshot, const locked_zone& zone,
                                              session_record* r)
{
    const session_extras none{};
    const session_extras& extras = r->extras != nullptr ? *r->extras : none;
    const mcp_session::session_key key = key_of(r);
    const std::uint64_t next_id =
        r->stream != nullptr ? r->stream->next_id : (r->next_event_id > 1 ? r->next_event_id : 0);
    return snapshot.add(key, {r->created_ms, r->last_access_ms}, next_id, extras.bound, extras.principal,
                        extras.tenant, locked_zone::backend_id_of(r), zone.pinned_server(r));
}

// Empty buckets passed per hold of the lock, besides the sessions: a
// large zone holding few sessions is walked in slices too.
constexpr std::uint32_t slice_buckets = 65536;

struct slice_outcome {
    bool done = false;
    std::int64_t held_ns = 0;  // how long the zone lock was held
};

std::int64_t monotonic_ns()
{
    struct timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// One hold of the zone lock: copies the next slice of sessions in hash
// order (mcp_session/index_buckets.hpp). Whatever was deleted before its
// slice is not copied; whatever is created meanwhile is copied if its hash
// is still ahead of the cursor.
slice_outcome copy_slice(zone_conf& zone, mcp_session::save_cursor& cursor, mcp_session::state_snapshot& snapshot)
{
    slice_outcome outcome;
    zone_transaction tx(zone);
    const std::int64_t start = monotonic_ns();
    // Out of room: the slice ends before this session and the next one
    // goes on from it, after room was made outside the lock.
    outcome.done = walk_slice(tx.zone(), cursor, slice_sessions, slice_buckets, [&](session_record* r) {
        return add_record(snapshot, tx.zone(), r) != mcp_session::state_snapshot::added::no_room;
    });
    outcome.held_ns = monotonic_ns() - start;
    return outcome;
}

// A snapshot with the zone's header, its memory reserved for the sessions
// the zone holds now and bounded by the zone's size (a larger file would
// be refused when read).
std::unique_ptr<mcp_session::state_snapshot> new_snapshot(zone_conf& zone)
{
    mcp_session::state_header header;
    std::size_t sessions = 0;
    {
        zone_transaction tx(zone);
        header.binding_key = tx.zone().shared().hash_seed;
        sessions = static_cast<std::size_t>(tx.zone().shared().sessions);
    }
    header.saved_at_ms = now_ms();
    return std::make_unique<mcp_session::state_snapshot>(header, zone.shm_zone->shm.size, sessions);
}

void report_left_out(const zone_conf& zone, std::size_t left_out, ngx_log_t* log)
{
    if (left_out > 0) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mcp_session zone \"%V\": %uz sessions were left out of the state file (it would have been "
                      "larger than the zone)",
                      &zone.name, left_out);
    }
}

// The master at exit (no event loop, nothing else to serve): every slice
// at once, then the write, all here.
bool save_now(zone_conf& zone, ngx_log_t* log)
{
    std::unique_ptr<mcp_session::state_snapshot> snapshot = new_snapshot(zone);
    mcp_session::save_cursor cursor;
    for (bool done = false; !done;) {
        snapshot->make_room(slice_sessions);
        done = copy_slice(zone, cursor, *snapshot).done;
    }
    std::string error;
    if (!write_state_file(*zone.state, snapshot->finish(key_of(*zone.state)), error)) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "mcp_session zone \"%V\": saving the state file failed: %s", &zone.name,
                      error.c_str());
        return false;
    }
    remember_file(zone, identify(*zone.state));
    report_left_out(zone, snapshot->left_out(), log);
    return true;
}

// One line when a planted lock entry had to be removed first.
void report_replaced_lock(const state_lock& lock, const zone_conf& zone, ngx_log_t* log)
{
    if (lock.replaced()) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mcp_session zone \"%V\": \"%s.lock\" was not a lock file of the worker user; replaced it",
                      &zone.name, path_of(zone));
    }
}

// A worker's periodic save of one zone: slices copied in the event loop,
// one per timer tick, then the file written by the writer. Process memory;
// one save at a time per zone.
struct worker_save {
    zone_conf* zone = nullptr;
    ngx_event_t slice_event{};  // the next slice's timer (cancelable: it never delays an exit)
    std::unique_ptr<state_file_writer> writer;
    std::unique_ptr<mcp_session::state_snapshot> snapshot;  // while slicing
    std::unique_ptr<state_lock> lock;                        // held from the start to the written file
    mcp_session::save_cursor cursor;
    std::size_t slices = 0;
    std::int64_t longest_hold_ns = 0;
    std::int64_t total_hold_ns = 0;
    std::size_t left_out = 0;

    bool slicing() const { return snapshot != nullptr; }
    bool busy() const { return slicing() || writer->busy(); }
};

// Every zone's save in this worker (the events point into them).
std::vector<worker_save*>& worker_saves()
{
    static std::vector<worker_save*> saves;
    return saves;
}

// When the next save is due (by any worker): `now` after a save that did
// not finish, so another worker takes over at once.
void schedule_next_save(zone_conf& zone, unix_ms next)
{
    zone_transaction tx(zone);
    tx.zone().shared().next_state_save_ms = next;
}

void abandon(worker_save& save, ngx_log_t* log, const char* why)
{
    ngx_log_error(NGX_LOG_INFO, log, 0, "mcp_session zone \"%V\": state save abandoned after %uz slices: %s",
                  &save.zone->name, save.slices, why);
    save.snapshot.reset();
    save.lock.reset();
    schedule_next_save(*save.zone, now_ms());
}

void on_written(void* data, state_write_result& result)
{
    auto& save = *static_cast<worker_save*>(data);
    zone_conf& zone = *save.zone;
    ngx_log_t* log = save.slice_event.log;
    try {
        if (result.ok) {
            remember_file(zone, result.written);
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "mcp_session zone \"%V\": state saved to \"%s\": %uL sessions, %uz bytes, %uz slices "
                          "(longest lock hold %uL us, mean %uL us), written %s",
                          &zone.name, path_of(zone), result.sessions, result.bytes, save.slices,
                          static_cast<std::uint64_t>(save.longest_hold_ns / 1000),
                          static_cast<std::uint64_t>(save.total_hold_ns / 1000 /
                                                     static_cast<std::int64_t>(std::max<std::size_t>(save.slices, 1))),
                          save.writer->where());
            report_left_out(zone, save.left_out, log);
        } else {
            ngx_log_error(NGX_LOG_ERR, log, 0, "mcp_session zone \"%V\": saving the state file failed: %s", &zone.name,
                          result.error.c_str());
        }
        // The interval counts from the end of a save: saves never overlap.
        schedule_next_save(zone, zone.state_saves.next_after(now_ms()));
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "mcp_session zone \"%V\": saving state failed: %s", &zone.name, e.what());
    }
}

void on_slice(ngx_event_t* ev) noexcept
{
    auto& save = *static_cast<worker_save*>(ev->data);
    if (!save.slicing()) {
        return;
    }
    try {
        if (ngx_exiting || ngx_quit || ngx_terminate) {
            abandon(save, ev->log, "the worker is exiting");  // the master saves at exit, or a new worker next
            return;
        }
        save.snapshot->make_room(slice_sessions);  // any allocation before the lock
        const slice_outcome slice = copy_slice(*save.zone, save.cursor, *save.snapshot);
        ++save.slices;
        save.longest_hold_ns = std::max(save.longest_hold_ns, slice.held_ns);
        save.total_hold_ns += slice.held_ns;
        if (!slice.done) {
            ngx_add_timer(ev, slice_pause_ms);
            return;
        }
        save.left_out = save.snapshot->left_out();
        save.writer->write(std::move(save.snapshot), std::move(save.lock));
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0, "mcp_session zone \"%V\": saving state failed: %s", &save.zone->name,
                      e.what());
        abandon(save, ev->log, "an error");
    }
}

// Starts a save: the state lock first (held until the file is written),
// then what another nginx saved is adopted, then the first slice.
void start_save(worker_save& save, ngx_log_t* log)
{
    zone_conf& zone = *save.zone;
    // Never waits: a lock held by anyone (an old master saving, or a
    // process of the worker user holding it forever) skips this save with
    // one line; the next interval tries again.
    auto lock = std::make_unique<state_lock>(*zone.state, 1);
    report_replaced_lock(*lock, zone, log);
    if (!lock->held()) {
        const ngx_uint_t level = lock->busy() ? NGX_LOG_WARN : NGX_LOG_ERR;
        ngx_log_error(level, log, 0,
                      "mcp_session zone \"%V\": state file \"%s\" not saved: %s; skipped until the next "
                      "state_interval",
                      &zone.name, path_of(zone), lock->error().c_str());
        schedule_next_save(zone, zone.state_saves.next_after(now_ms()));
        return;
    }
    if (file_changed_by_another(zone, identify(*zone.state))) {
        load(zone, log, false);  // only after another nginx wrote the file (a binary upgrade)
    }
    std::unique_ptr<mcp_session::state_snapshot> snapshot = new_snapshot(zone);
    save.lock = std::move(lock);
    save.snapshot = std::move(snapshot);
    save.cursor = {};
    save.slices = 0;
    save.longest_hold_ns = 0;
    save.total_hold_ns = 0;
    save.left_out = 0;
    ngx_add_timer(&save.slice_event, slice_pause_ms);
}

void on_state_timer(ngx_event_t* ev) noexcept
{
    auto& save = *static_cast<worker_save*>(ev->data);
    zone_conf* zone = save.zone;
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;  // the master saves at exit
    }
    try {
        bool due = false;
        const unix_ms now = now_ms();
        if (!save.busy()) {
            zone_transaction tx(*zone);
            zone_shared& sh = tx.zone().shared();
            due = zone->state_saves.due(sh.next_state_save_ms, now);
            if (due) {
                // Claimed until this save ends (it sets the next time).
                sh.next_state_save_ms = now + mcp_session::save_lease_ms(zone->state_saves.interval_ms);
            }
        }
        if (due) {
            start_save(save, ev->log);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0, "mcp_session zone \"%V\": saving state failed: %s", &zone->name,
                      e.what());
        if (save.slicing()) {
            abandon(save, ev->log, "an error");
        } else if (!save.writer->busy()) {
            schedule_next_save(*zone, zone->state_saves.next_after(now_ms()));  // give the claim back
        }
    }
    ngx_add_timer(ev, static_cast<ngx_msec_t>(zone->state_saves.interval_ms));
}

// Zones whose state directory and key are usable (open_state_files logged
// why not, once, for the others).
template <typename Each>
void for_each_state_zone(ngx_cycle_t* cycle, Each each)
{
    for_each_zone(cycle, [&](zone_conf& zone) {
        if (zone.state_path.len > 0 && zone.shared != nullptr && zone.state != nullptr && zone.state->keyed) {
            each(zone);
        }
    });
}

// A zone made afresh by a reload whose previous configuration had a zone
// of this name: its size changed (nginx keeps a zone of unchanged size).
// A first start and a binary upgrade's new master come from the init cycle.
bool resized_by_reload(const ngx_cycle_t* cycle, const zone_conf& zone)
{
    const ngx_cycle_t* old = cycle->old_cycle;
    if (old == nullptr || ngx_is_init_cycle(old)) {
        return false;
    }
    const ngx_list_part_t* part = &old->shared_memory.part;
    for (; part != nullptr; part = part->next) {
        const auto* zones = static_cast<const ngx_shm_zone_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; ++i) {
            const ngx_str_t& name = zones[i].shm.name;
            if (zones[i].tag == zone.shm_zone->tag && name.len == zone.name.len &&
                ngx_strncmp(name.data, zone.name.data, name.len) == 0) {
                return true;
            }
        }
    }
    return false;
}

}  // namespace

void restore_state(ngx_cycle_t* cycle) noexcept
{
    // Every cycle: the workers about to fork inherit the directory and the
    // key from here (a reload reads the same key file again).
    for_each_zone(cycle, [&](zone_conf& zone) {
        if (zone.state_path.len > 0 && zone.shared != nullptr) {
            zone.state = open_state_files(cycle, zone);
        }
    });
    for_each_state_zone(cycle, [&](zone_conf& zone) {
        if (!zone.made_afresh) {
            return;  // a reload keeps the zone's sessions in memory
        }
        try {
            if (resized_by_reload(cycle, zone)) {
                // The file is up to state_interval old: sessions deleted
                // since would come back. Marked as seen, so the first
                // periodic save does not adopt it either.
                remember_file(zone, identify(*zone.state));
                ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                              "mcp_session zone \"%V\": resized by a reload; starting with an empty zone, "
                              "\"%s\" not restored",
                              &zone.name, path_of(zone));
                return;
            }
            load(zone, cycle->log, true);
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "mcp_session zone \"%V\": restoring state failed: %s; starting with an empty zone",
                          &zone.name, e.what());
        }
    });
}

ngx_int_t prepare_state_saves(ngx_conf_t* cf) noexcept { return add_state_thread_pool(cf); }

ngx_int_t start_state_timers(ngx_cycle_t* cycle) noexcept
{
    ngx_int_t rc = NGX_OK;
    for_each_state_zone(cycle, [&](zone_conf& zone) {
        try {
            auto* save = new worker_save;
            save->zone = &zone;
            save->writer = std::make_unique<state_file_writer>(cycle, *zone.state, on_written, save);
            save->slice_event.handler = on_slice;
            save->slice_event.data = save;
            save->slice_event.log = cycle->log;
            save->slice_event.cancelable = 1;
            worker_saves().push_back(save);
            ngx_event_t* ev = &zone.state_timer;
            ev->handler = on_state_timer;
            ev->data = save;
            ev->log = cycle->log;
            ev->cancelable = 1;
            ngx_add_timer(ev, static_cast<ngx_msec_t>(zone.state_saves.interval_ms));
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0, "mcp_session zone \"%V\": no periodic saves: %s", &zone.name,
                          e.what());
            rc = NGX_ERROR;
        }
    });
    return rc;
}

void finish_state_saves_at_exit(ngx_cycle_t* cycle) noexcept
{
    for (worker_save* save : worker_saves()) {
        try {
            if (save->slicing()) {
                abandon(*save, cycle->log, "the worker is exiting");
            } else {
                // The pools have run every queued task by now: a file written
                // after the event loop stopped is reported, and its lock freed.
                save->writer->finish_at_exit();
            }
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "mcp_session zone \"%V\": saving state failed: %s",
                          &save->zone->name, e.what());
        }
    }
}

void save_state_at_exit(ngx_cycle_t* cycle) noexcept
{
    for_each_state_zone(cycle, [&](zone_conf& zone) {
        try {
            // The master serves nothing any more: it may wait a little for
            // a worker of a new nginx finishing its save, never for long.
            const state_lock lock(*zone.state, 20);
            report_replaced_lock(lock, zone, cycle->log);
            if (!lock.held()) {
                ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "mcp_session zone \"%V\": state file \"%s\" not saved at exit: %s",
                              &zone.name, path_of(zone), lock.error().c_str());
            } else if (save_now(zone, cycle->log)) {
                ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0, "mcp_session zone \"%V\": state saved to \"%s\"",
                              &zone.name, path_of(zone));
            }
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "mcp_session zone \"%V\": saving state failed: %s",
                          &zone.name, e.what());
        }
    });
}

}  // namespace mcp_ngx
