// The layout of a session zone in shared memory and the operations on it
// that need the zone lock. Used by the store (sessions) and the event
// store (rings); nothing else reaches into shared memory.
#pragma once

#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_index.hpp"

#include "mcp_session/event.hpp"
#include "mcp_session/index_buckets.hpp"
#include "mcp_session/replay.hpp"
#include "mcp_session/room.hpp"
#include "mcp_session/session_key.hpp"
#include "mcp_session/state_snapshot.hpp"
#include "mcp_session/status.hpp"

#include <bitset>
#include <string_view>
#include <vector>
#include <cstddef>
#include <type_traits>

namespace mcp_ngx {

// Bumped whenever the layout below changes, so a reload that loads a
// different build of the module never reads the old layout as the new.
constexpr std::uint32_t layout_version = 18;

// Which of a worker's streams have news: tokens queued by publishers, so the
// woken worker pumps only those instead of every stream it holds. A full
// (or missing) inbox makes the worker look at all its streams instead.
// Allocated by the master for each worker slot before the workers start,
// kept for the zone's life: a respawned or reloaded worker reuses its slot's.
inline constexpr std::size_t inbox_workers = 64;
inline constexpr std::size_t inbox_capacity = 4096;

struct worker_inbox {
    std::uint32_t count;
    std::uint32_t overflow;
    std::uint64_t tokens[inbox_capacity];
};

// Which process holds a worker number in which configuration cycle: a
// process finding its number held in its own cycle by another pid knows
// that process died (the master respawns only dead workers), so the
// streams still registered to that number are nobody's.
struct worker_tenant {
    std::uint64_t cycle;  // zone_shared::cycles when the holder started
    std::int64_t pid;
};

// The upstream servers sessions are pinned to (mcp_session_sticky), by
// the address nginx names them with (`127.0.0.1:8081`, `unix:/path`): a
// session keeps a slot number, so the address is stored once per server,
// not once per session, and the per-server counts cost nothing to read.
// A slot whose count drops to 0 is free for another address. The table
// is allocated at a zone's first pin and kept for the zone's life.
inline constexpr std::size_t pin_slots = mcp_session::max_status_upstreams;
inline constexpr std::size_t max_pinned_name = mcp_session::max_upstream_name;
static_assert(pin_slots <= 255, "session_record::pin holds 1 + a slot number in one byte");

struct upstream_pin {
    std::uint64_t sessions;
    std::uint8_t size;
    u_char name[max_pinned_name];
};

struct zone_shared {
    std::uint32_t layout;
    std::uint64_t hash_seed;
    session_buckets index;  // sessions by id (ngx_mcp_session_index.hpp)
    ngx_rbtree_t backend_ids;  // issue mode: sessions by the backend's own id (see backend_index_entry)
    ngx_rbtree_node_t backend_sentinel;
    ngx_queue_t by_last_access;  // established sessions; head: least recently used
    ngx_queue_t unused_by_last_access;  // sessions never named since their creating request; evicted first
    ngx_queue_t by_creation;     // head: oldest
    std::uint64_t sessions;
    std::uint64_t next_subscription;
    mcp_session::unix_ms next_sweep_ms;
    mcp_session::unix_ms last_eviction_log_ms;
    std::uint64_t evictions_unlogged;
    std::uint64_t sessions_with_ring;
    std::uint64_t open_streams;
    mcp_session::zone_counters counters;  // since the zone was made; kept across reloads
    worker_inbox* inboxes[inbox_workers];  // by worker number, see open_inbox
    mcp_session::unix_ms next_state_save_ms;
    std::int64_t state_file_mtime_ns;  // the state file as this zone last wrote or read it
    std::int64_t state_file_size;
    std::uint64_t cycles;                    // configuration cycles that used the zone
    worker_tenant tenants[inbox_workers];    // by worker number
    struct traffic_table* traffic;           // MCP traffic counters (ngx_mcp_session_traffic.hpp); may be null
    upstream_pin* pins;  // pin_slots of them, made at the first pin (small zones without sticky pay nothing)
    // With redis=: the key every node of the cluster digests bindings
    // with (agreed in Redis, see ngx_mcp_session_cluster.cpp), once known.
    std::uint64_t cluster_binding_key;
    std::uint8_t cluster_key_known;
};

struct event_slot {
    std::uint64_t id;
    u_char* data;  // slab allocation of `size` bytes
    std::uint64_t post_stream;  // 0: the standalone stream; else P of the POST stream it belongs to
    std::uint32_t size;
    std::uint32_t post_index;   // k within that POST stream (0: the marker that opened it)
    mcp_session::event_kind kind;
    std::uint8_t flags;         // slot_framed, slot_response
};

// The payload is an event's field lines as the client got them live
// (mcp_session::relayed_event::fields), not data to be framed.
inline constexpr std::uint8_t slot_framed = 1;
// The event carried the JSON-RPC response of its POST stream.
inline constexpr std::uint8_t slot_response = 2;
// redis=: an id the cluster gave an event this node has not received
// yet (streams wait at it), or one it will not receive (announced as lost).
inline constexpr std::uint8_t slot_pending = 4;
inline constexpr std::uint8_t slot_lost = 8;

// A POST stream whose events the session's ring records: its numbering,
// whether its answer is still being read, and who resumes it. Its number
// P is the session event id of the marker slot that opened it (ids are
// never reused, also across a ring given back). A few are tracked per
// session (the most recent ones); a resume of an older one replays what
// the ring still holds of it and ends.
inline constexpr std::size_t post_streams_tracked = 8;

struct post_stream_entry {
    std::uint64_t stream;          // P; 0: the entry is free
    std::uint32_t next_index;      // k of its next event: 1 .. next_index-1 were passed to the client
    std::uint32_t response_index;  // k of the event that carried the response; 0: none yet
    std::uint8_t recording;        // 1 while a worker reads the backend's answer
    std::int32_t recorder_worker;  // that worker's number (its death ends the recording)
    std::uint64_t subscriber;      // token of the GET resuming it; 0: none
    std::int32_t subscriber_worker;
};

// Allocated at a session's first event or subscriber, never before:
// an idle session costs one 128-byte record.
struct session_stream {
    std::uint64_t next_id;
    std::uint64_t subscriber;  // subscription token; 0 = nobody listening
    std::int32_t subscriber_worker;
    std::uint32_t capacity;
    std::uint64_t first_kept;  // ids below were lost in a restart (see ring_window)
    std::uint64_t quiet_below;  // ids below were only markers of a ring given back (see ring_window)
    std::uint64_t delivered;  // the newest id any stream has sent: where a GET without Last-Event-ID starts
    // The backend's own GET stream, which one worker holds open for the
    // session (ngx_mcp_session_backend_stream.cpp): that worker's pid, 0
    // when none does. A claim of a process that died is taken over.
    std::int64_t backend_stream_holder;
    // redis=: a GET on another node took the session's stream over, so
    // the client is there now (no grace period here for the backend's stream).
    std::uint64_t listened_elsewhere;
    post_stream_entry posts[post_streams_tracked];
    // event_slot[capacity] follows
};

// Present only when a session is bound to a principal or tenant, or when
// nginx issued its id and the backend has its own (issue mode).
struct session_extras {
    std::uint64_t principal;  // keyed digests: no raw credential in the zone
    std::uint64_t tenant;
    std::uint8_t bound;       // bit 0: principal, bit 1: tenant
    std::uint16_t backend_id_size;  // up to max_session_id_length
    std::uint16_t initialize_size;  // the client's initialize, kept for mcp_session_heal (up to max_kept_initialize)
    // if backend_id_size > 0: a backend_index_entry, then the backend's id bytes;
    // then initialize_size bytes of the initialize request's body
};

// Finds a session by the id its backend knows (issue mode), so a backend
// can publish with it. When two sessions carry the same backend id, the
// one that set it last is indexed (the other keeps forwarding it).
struct backend_index_entry {
    ngx_rbtree_node_t node;  // key: the backend id's hash (zone seed)
    struct session_record* owner;
    std::uint8_t indexed;    // 1 while in zone_shared::backend_ids
};

inline constexpr std::uint8_t bound_principal = 1;
inline constexpr std::uint8_t bound_tenant = 2;
// The digests are under the cluster's binding key (redis=), not the
// zone's own: every node can check them, and Redis may hold them.
inline constexpr std::uint8_t bound_by_cluster_key = 4;

// A session lives in one slab allocation: this record, then the id bytes.
// The index's fields come first, so a chain walk that passes a record
// reads only its first cache line.
struct session_record {
    std::uint64_t hash;  // the id's keyed hash (zone seed): its bucket and place in the chain
    record_ref next;     // the next record of its bucket's chain; 0: none
    std::uint16_t flags;  // record_established, record_ids_lost
    std::uint8_t id_size;
    std::uint8_t id_form;  // mcp_session::id_form
    ngx_queue_t by_last_access;  // in unused_by_last_access until established, then by_last_access
    ngx_queue_t by_creation;
    mcp_session::unix_ms created_ms;
    mcp_session::unix_ms last_access_ms;
    session_stream* stream;
    session_extras* extras;
    std::uint64_t next_event_id;  // while the session has no ring: the id its next event gets
    // redis=: the newest id the cluster gave one of the session's events
    // that this node saw; a Redis that lost the session's stream numbers on from here.
    std::uint64_t cluster_floor;
    std::uint8_t pin;     // 1 + the zone_shared::pins slot of its upstream server; 0: not pinned
};

// The session has been named by a request since the one that created it.
inline constexpr std::uint16_t record_established = 1;
// The ids below next_event_id were lost in a restart (not only markers of
// a ring given back): a ring made for the session announces them.
inline constexpr std::uint16_t record_ids_lost = 2;
// The backend answered nginx's GET for its own stream with 405 (or other
// than an event stream): it offers none, so no worker asks again for the
// session (kept when the ring is given back).
inline constexpr std::uint16_t record_no_backend_stream = 4;

static_assert(std::is_standard_layout_v<session_record> && std::is_trivially_copyable_v<session_record>);
static_assert(std::is_standard_layout_v<session_stream> && std::is_trivially_copyable_v<session_stream>);
static_assert(std::is_standard_layout_v<session_extras> && std::is_trivially_copyable_v<session_extras>);
static_assert(std::is_standard_layout_v<backend_index_entry> && std::is_trivially_copyable_v<backend_index_entry>);
static_assert(std::is_standard_layout_v<event_slot> && std::is_trivially_copyable_v<event_slot>);
static_assert(std::is_standard_layout_v<post_stream_entry> && std::is_trivially_copyable_v<post_stream_entry>);
static_assert(std::is_standard_layout_v<worker_inbox> && std::is_trivially_copyable_v<worker_inbox>);
static_assert(std::is_standard_layout_v<zone_shared> && std::is_trivially_copyable_v<zone_shared>);

// What one allocation cost other sessions (see mcp_session/room.hpp).
struct room_report {
    std::size_t expired = 0;
    std::size_t evicted = 0;
    std::size_t own_events_dropped = 0;
};

// Workers whose doorbell must ring once the lock is released.
using worker_set = std::bitset<NGX_MAX_PROCESSES>;

// A key's hash with the zone's seed. No lock needed: the seed is fixed
// once workers run (only the master's restore sets it, on a fresh zone).
std::uint64_t hash_of(const zone_conf& zone, const mcp_session::session_key& key);

// Operations on the shared structures; every method expects the lock held
// and none allocates process memory or logs.
class locked_zone {
public:
    explicit locked_zone(zone_conf& zone) : zone_(zone), sh_(*zone.shared) {}

    session_record* find(const mcp_session::session_key& key);
    // The same with the key's hash (hash_of) already computed, for a
    // caller that also inserts the key or hashes it before the lock.
    std::uint64_t hash_of(const mcp_session::session_key& key) const { return mcp_ngx::hash_of(zone_, key); }
    session_record* find(const mcp_session::session_key& key, std::uint64_t hash);
    // The session whose backend id is `backend_id` (issue mode), or null.
    session_record* find_by_backend_id(std::string_view backend_id);
    void touch(session_record* record, mcp_session::unix_ms now);
    // Moves a session into the established class (evicted after every unused one).
    void establish(session_record* record);
    void remove(session_record* record);
    session_record* allocate(const mcp_session::session_key& key);  // no room is made
    // Frees a record from allocate() that was never linked.
    void discard(session_record* record);
    session_record* allocate(const mcp_session::session_key& key, std::uint64_t hash, mcp_session::unix_ms now,
                             room_report& report);
    void link(session_record* record, mcp_session::unix_ms now);
    // Links a restored session with its saved times, kept out of the LRU
    // order until link_by_last_access (restores come in creation order).
    void link_restored(session_record* record, const mcp_session::session_times& times);
    void link_by_last_access(session_record* record);
    // Links a session another node made (redis=) with the times the
    // cluster holds: most recently used, and among the sessions created
    // about when it was (a bounded walk back from the newest).
    void link_adopted(session_record* record, const mcp_session::session_times& times);
    std::size_t remove_expired(mcp_session::unix_ms now, std::size_t budget);
    std::size_t note_evictions(std::size_t evicted, mcp_session::unix_ms now);

    // Streams and rings.
    // Allocates the ring on first use; nullptr if no memory. Without a
    // purpose no room is made (restore); with one, as room_policy_for says.
    session_stream* stream_of(session_record* record);
    session_stream* stream_of(session_record* record, mcp_session::room_purpose purpose, mcp_session::unix_ms now,
                              room_report& report);
    // Gives the ring back when it holds no message (only init and heartbeat
    // markers) and nobody listens: a client that opens a stream and leaves
    // costs the zone nothing afterwards. Ids go on where they stopped.
    bool release_idle_ring(session_record* record);
    // A restored session's id counter, without a ring: the ring made at
    // its next event or stream starts there and counts the ids below as lost.
    static void restore_event_ids(session_record* record, std::uint64_t next_id);
    static mcp_session::ring_window window_of(const session_stream* stream);
    static event_slot* slots_of(session_stream* stream);
    void drop_event(event_slot& slot);
    // Bounded: tries the slab, then does what room_policy_for(purpose)
    // allows, retrying after each step; `owner` (may be null) is never a
    // victim. Expiry only with `now`.
    void* allocate_with_room(std::size_t size, mcp_session::room_purpose purpose, session_record* owner,
                             const mcp_session::unix_ms* now, room_report& report);

    // Replaces the session's extras (bindings, backend id) and its entry
    // in the backend id index; false if no memory (a few idle sessions may
    // make room, room_purpose::session).
    // `initialize` (may point into the record's current extras) is kept
    // beside them for mcp_session_heal.
    bool set_extras(session_record* record, const session_extras& fields, std::string_view backend_id,
                    std::string_view initialize = {});
    // set_extras keeping the session's bindings: it now reaches its
    // backend as `backend_id`, with `initialize` kept beside it.
    bool set_backend_id(session_record* record, std::string_view backend_id, std::string_view initialize);
    static std::string_view backend_id_of(const session_record* record);
    static std::string_view initialize_of(const session_record* record);

    // Pins the session to the upstream server named `name` (its peer
    // address); false when the name is too long or every slot holds
    // another server's sessions. An empty name unpins.
    bool pin(session_record* record, std::string_view name);
    std::string_view pinned_server(const session_record* record) const;

    // Tells `worker` that the stream with `token` has news (or ended).
    void notify(std::int32_t worker, std::uint64_t token);

    // Gives `worker` its inbox if it has none yet (none: no room; the
    // worker then looks at all its streams on every wake-up).
    bool open_inbox(ngx_int_t worker);  // false: no room

    // Moves this worker's queued tokens into `out` (reserved to
    // inbox_capacity by the caller); true when it must look at every stream.
    bool drain_inbox(ngx_int_t worker, std::vector<std::uint64_t>& out);

    // Ends the registration of every stream held by worker number
    // `worker` (its process died); returns how many there were.
    std::size_t release_streams_of(std::int32_t worker);

    // Every session, oldest created first.
    template <typename Visit>
    void for_each_by_creation(Visit visit)
    {
        for (ngx_queue_t* q = ngx_queue_head(&sh_.by_creation); q != ngx_queue_sentinel(&sh_.by_creation);
             q = ngx_queue_next(q)) {
            visit(reinterpret_cast<session_record*>(reinterpret_cast<u_char*>(q) - offsetof(session_record, by_creation)));
        }
    }

    zone_shared& shared() { return sh_; }
    session_index index() { return session_index(sh_.index, zone_.pool); }
    zone_conf& conf() { return zone_; }
    // Whether anything asked for a doorbell (saves scanning the set on
    // every transaction, nearly all of which ring none).
    bool wakes_anyone() const { return wakes_anyone_; }
    const worker_set& to_wake() const { return wake_; }

private:
    session_record* fill(void* memory, const mcp_session::session_key& key, std::uint64_t hash);
    bool evict_oldest(ngx_queue_t* queue, const session_record* spare, bool established);
    bool drop_oldest_own_event(session_record* owner, std::size_t wanted);
    void free_stream(session_record* record);
    void free_extras(session_record* record);
    void unpin(session_record* record);

    zone_conf& zone_;
    zone_shared& sh_;
    worker_set wake_;
    bool wakes_anyone_ = false;
};

// Holds the zone lock for its lifetime; rings the collected doorbells
// after releasing it (ringing never happens under the lock).
class zone_transaction {
public:
    explicit zone_transaction(zone_conf& zone);
    ~zone_transaction();
    zone_transaction(const zone_transaction&) = delete;
    zone_transaction& operator=(const zone_transaction&) = delete;

    locked_zone& zone() { return zone_; }

private:
    ngx_slab_pool_t* pool_;
    locked_zone zone_;
};

// One slice of a walk over every session in hash order (see
// mcp_session/index_buckets.hpp), under one hold of the lock: at most
// `sessions` visited and `buckets` scanned. `visit(record)` returns false
// to end the slice before that record, which the next slice visits first
// (unless it shares its hash with the last one visited: then it is passed).
// Whatever is deleted before its slice is not visited; whatever is created
// meanwhile is, if its hash is still ahead of the cursor. True when done.
template <typename Visit>
bool walk_slice(locked_zone& zone, mcp_session::save_cursor& cursor, std::size_t sessions, std::uint32_t buckets,
                Visit visit)
{
    const session_index index = zone.index();
    std::uint32_t bucket = cursor.started() ? index.bucket_of(cursor.last()) : 0;
    const std::uint64_t resume_above = cursor.last();
    session_record* r = index.first_in_order(bucket, cursor.started() ? &resume_above : nullptr);
    std::size_t visited = 0;
    for (std::uint32_t scanned = 0;;) {
        if (r == nullptr) {
            if (bucket + 1 == index.bucket_count()) {
                return true;
            }
            if (++scanned == buckets) {
                cursor.passed(mcp_session::last_hash_of(bucket, index.bucket_count()));
                return false;
            }
            r = index.first_in_order(++bucket, nullptr);
            continue;
        }
        if (cursor.may_stop_before(r->hash, visited, sessions)) {
            return false;
        }
        if (!visit(r) && cursor.may_stop_before(r->hash, sessions, sessions)) {
            return false;
        }
        cursor.passed(r->hash);
        ++visited;
        r = index.next_in_order(bucket, r->hash, r);
    }
}

// The times the expiry rules take (mcp_session/expiry.hpp).
mcp_session::session_times times_of(const session_record* record);

// The key a record was stored under.
mcp_session::session_key key_of(const session_record* record);

// shm_zone->init: adopts the previous cycle's zone on reload.
ngx_int_t init_zone(ngx_shm_zone_t* shm_zone, void* data) noexcept;

}  // namespace mcp_ngx
