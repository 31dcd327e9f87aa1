#include "ngx_mcp_session_zone.hpp"

#include "ngx_mcp_session_phases.hpp"
#include "ngx_mcp_session_traffic.hpp"

#include "ngx_mcp_session_doorbell.hpp"

#include "mcp_session/sweep.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

namespace mcp_ngx {

using mcp_session::session_key;
using mcp_session::session_times;
using mcp_session::unix_ms;

namespace {

constexpr std::size_t record_size(std::size_t id_size) { return sizeof(session_record) + id_size; }

// An idle session with a packed UUID or 32-digit hex id fits the slab's
// 128-byte class; every record is in that class or a larger one, which
// record_ref (in 128-byte units) relies on.
static_assert(record_size(session_key::packed_uuid_size) <= 128);
static_assert(sizeof(session_record) > 64 && record_ref_unit == 128);
static_assert(session_key::max_stored_size <= UINT8_MAX);
static_assert(mcp_session::max_session_id_length <= UINT16_MAX);

u_char* id_bytes(session_record* record) { return reinterpret_cast<u_char*>(record + 1); }

// The backend id index: equal hashes are ordered by `compare` on the ids,
// so lookup and insert agree on where a colliding id sits.
template <int (*compare)(ngx_rbtree_node_t*, ngx_rbtree_node_t*)>
void insert_by_hash(ngx_rbtree_node_t* temp, ngx_rbtree_node_t* node, ngx_rbtree_node_t* sentinel)
{
    ngx_rbtree_node_t** link;
    for (;;) {
        if (node->key != temp->key) {
            link = (node->key < temp->key) ? &temp->left : &temp->right;
        } else {
            link = compare(node, temp) < 0 ? &temp->left : &temp->right;
        }
        if (*link == sentinel) {
            break;
        }
        temp = *link;
    }
    *link = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}

// Adapts one of the zone's two orders for mcp_session::sweep_expired.
class order {
public:
    order(locked_zone& zone, ngx_queue_t* head, std::size_t link_offset)
        : zone_(zone), head_(head), link_offset_(link_offset)
    {
    }
    bool empty() const { return ngx_queue_empty(head_); }
    session_times oldest() const { return times_of(first()); }
    void remove_oldest() { zone_.remove(first()); }
    const void* leader() const { return empty() ? nullptr : first(); }
    session_record* first() const
    {
        return reinterpret_cast<session_record*>(reinterpret_cast<u_char*>(ngx_queue_head(head_)) - link_offset_);
    }

private:
    locked_zone& zone_;
    ngx_queue_t* head_;
    std::size_t link_offset_;
};

order lru_order(locked_zone& zone)
{
    return order(zone, &zone.shared().by_last_access, offsetof(session_record, by_last_access));
}

order unused_lru_order(locked_zone& zone)
{
    return order(zone, &zone.shared().unused_by_last_access, offsetof(session_record, by_last_access));
}

ngx_queue_t* lru_queue_of(zone_shared& sh, const session_record* record)
{
    return (record->flags & record_established) ? &sh.by_last_access : &sh.unused_by_last_access;
}

// The least recently used session of one class, other than `spare`.
session_record* oldest_in(ngx_queue_t* queue, const session_record* spare)
{
    for (ngx_queue_t* q = ngx_queue_head(queue); q != ngx_queue_sentinel(queue); q = ngx_queue_next(q)) {
        auto* record =
            reinterpret_cast<session_record*>(reinterpret_cast<u_char*>(q) - offsetof(session_record, by_last_access));
        if (record != spare) {
            return record;
        }
    }
    return nullptr;
}

// A POST stream still being read or resumed keeps the ring it records into.
bool post_streams_busy(const session_stream* stream)
{
    for (const post_stream_entry& post : stream->posts) {
        if (post.stream != 0 && (post.recording != 0 || post.subscriber != 0)) {
            return true;
        }
    }
    return false;
}

bool holds_messages(session_stream* stream)
{
    const mcp_session::ring_window window = locked_zone::window_of(stream);
    const event_slot* slots = locked_zone::slots_of(stream);
    for (std::uint64_t id = window.oldest(); id < window.next_id; ++id) {
        const mcp_session::event_kind kind = slots[window.slot(id)].kind;
        if (kind != mcp_session::event_kind::init && kind != mcp_session::event_kind::heartbeat) {
            return true;
        }
    }
    return false;
}

// The backend id index entry that follows extras with a backend id.
backend_index_entry* entry_of(session_extras* extras)
{
    return extras != nullptr && extras->backend_id_size > 0 ? reinterpret_cast<backend_index_entry*>(extras + 1)
                                                            : nullptr;
}

std::string_view stored_backend_id(ngx_rbtree_node_t* node)
{
    auto* entry = reinterpret_cast<backend_index_entry*>(node);
    return locked_zone::backend_id_of(entry->owner);
}

int compare_backend_nodes(ngx_rbtree_node_t* a, ngx_rbtree_node_t* b)
{
    return stored_backend_id(a).compare(stored_backend_id(b));
}

order creation_order(locked_zone& zone)
{
    return order(zone, &zone.shared().by_creation, offsetof(session_record, by_creation));
}

}  // namespace

session_times times_of(const session_record* record) { return {record->created_ms, record->last_access_ms}; }

mcp_session::session_key key_of(const session_record* record)
{
    return mcp_session::session_key::from_stored(reinterpret_cast<const std::uint8_t*>(record + 1), record->id_size,
                                                 static_cast<mcp_session::id_form>(record->id_form));
}

std::uint64_t hash_of(const zone_conf& zone, const session_key& key) { return key.hash(zone.shared->hash_seed); }

session_record* locked_zone::find(const session_key& key) { return find(key, hash_of(key)); }
session_record* locked_zone::find(const session_key& key, std::uint64_t hash) { return index().find(key, hash); }

void locked_zone::touch(session_record* record, unix_ms now)
{
    record->last_access_ms = mcp_session::touched(times_of(record), now).last_access_ms;
    ngx_queue_remove(&record->by_last_access);
    ngx_queue_insert_tail(lru_queue_of(sh_, record), &record->by_last_access);
}

void locked_zone::establish(session_record* record)
{
    if (record->flags & record_established) {
        return;
    }
    record->flags |= record_established;
    ngx_queue_remove(&record->by_last_access);
    ngx_queue_insert_tail(&sh_.by_last_access, &record->by_last_access);  // it was just touched
}

void locked_zone::remove(session_record* record)
{
    free_stream(record);
    free_extras(record);
    unpin(record);
    ngx_queue_remove(&record->by_last_access);
    ngx_queue_remove(&record->by_creation);
    index().erase(record);
    ngx_slab_free_locked(zone_.pool, record);
    --sh_.sessions;
}

session_record* locked_zone::allocate(const session_key& key)
{
    return fill(ngx_slab_alloc_locked(zone_.pool, record_size(key.size())), key, hash_of(key));
}

void locked_zone::discard(session_record* record) { ngx_slab_free_locked(zone_.pool, record); }

session_record* locked_zone::fill(void* memory, const session_key& key, std::uint64_t hash)
{
    if (memory == nullptr) {
        return nullptr;
    }
    auto* record = static_cast<session_record*>(memory);
    record->hash = hash;
    record->next = 0;
    record->id_size = static_cast<std::uint8_t>(key.size());
    record->id_form = static_cast<std::uint8_t>(key.form());
    record->flags = 0;
    record->pin = 0;
    record->stream = nullptr;
    record->extras = nullptr;
    record->next_event_id = 1;
    record->cluster_floor = 0;
    std::memcpy(id_bytes(record), key.data(), key.size());
    return record;
}

session_record* locked_zone::allocate(const session_key& key, std::uint64_t hash, unix_ms now, room_report& report)
{
    return fill(allocate_with_room(record_size(key.size()), mcp_session::room_purpose::session, nullptr, &now, report),
                key, hash);
}

void locked_zone::link(session_record* record, unix_ms now)
{
    record->created_ms = now;
    record->last_access_ms = now;
    index().insert(record);
    ngx_queue_insert_tail(lru_queue_of(sh_, record), &record->by_last_access);
    ngx_queue_insert_tail(&sh_.by_creation, &record->by_creation);
    ++sh_.sessions;
}

void locked_zone::link_restored(session_record* record, const session_times& times)
{
    record->created_ms = times.created_ms;
    record->last_access_ms = times.last_access_ms;
    index().insert(record);
    ngx_queue_insert_tail(&sh_.by_creation, &record->by_creation);
    ngx_queue_init(&record->by_last_access);
    ++sh_.sessions;
}

void locked_zone::link_adopted(session_record* record, const session_times& times)
{
    // Usually made moments ago: a few steps at most. An old one lands
    // no further than this from the newest; the gate checks every
    // session's own times, so a late sweep only keeps memory longer.
    constexpr std::size_t max_steps = 64;
    record->created_ms = times.created_ms;
    record->last_access_ms = times.last_access_ms;
    record->flags |= record_established;
    index().insert(record);
    ngx_queue_t* after = ngx_queue_last(&sh_.by_creation);
    for (std::size_t step = 0; step < max_steps && after != ngx_queue_sentinel(&sh_.by_creation); ++step) {
        const session_record* other = ngx_queue_data(after, session_record, by_creation);
        if (other->created_ms <= times.created_ms) {
            break;
        }
        after = ngx_queue_prev(after);
    }
    ngx_queue_insert_after(after, &record->by_creation);
    ngx_queue_insert_tail(lru_queue_of(sh_, record), &record->by_last_access);  // the established class
    ++sh_.sessions;
}

// Restored sessions count as established: they were kept for a reason.
void locked_zone::link_by_last_access(session_record* record)
{
    record->flags |= record_established;
    ngx_queue_insert_tail(&sh_.by_last_access, &record->by_last_access);
}

std::size_t locked_zone::remove_expired(unix_ms now, std::size_t budget)
{
    order unused = unused_lru_order(*this);
    order by_access = lru_order(*this);
    order by_age = creation_order(*this);
    const auto leading = [&] {
        return mcp_session::expiry_horizon::heads{unused.leader(), by_access.leader(), by_age.leader()};
    };
    mcp_session::expiry_horizon& horizon = zone_.expiry_horizon;
    if (horizon.nothing_due(leading(), now)) {
        return 0;
    }
    std::size_t removed = mcp_session::sweep_expired(unused, zone_.policy, now, budget);
    removed += mcp_session::sweep_expired(by_access, zone_.policy, now, budget - removed);
    removed += mcp_session::sweep_expired(by_age, zone_.policy, now, budget - removed);
    sh_.counters.expired_swept += removed;
    if (removed == budget) {
        horizon.forget();  // stopped by the budget: more may be due
        return removed;
    }
    unix_ms earliest = std::numeric_limits<unix_ms>::max();
    for (const order* o : {&unused, &by_access, &by_age}) {
        if (!o->empty()) {
            earliest = std::min(earliest, mcp_session::expires_at(o->oldest(), zone_.policy));
        }
    }
    horizon.remember(leading(), earliest);
    return removed;
}

// One victim of a class, least recently used first; the session being
// served is never its own victim.
bool locked_zone::evict_oldest(ngx_queue_t* queue, const session_record* spare, bool established)
{
    session_record* victim = oldest_in(queue, spare);
    if (victim == nullptr) {
        return false;
    }
    remove(victim);
    ++sh_.counters.evicted;
    ++(established ? sh_.counters.evicted_established : sh_.counters.evicted_unused);
    return true;
}

std::size_t locked_zone::note_evictions(std::size_t evicted, unix_ms now)
{
    sh_.evictions_unlogged += evicted;
    if (sh_.evictions_unlogged == 0 || now - sh_.last_eviction_log_ms < 1000) {
        return 0;
    }
    const auto due = static_cast<std::size_t>(sh_.evictions_unlogged);
    sh_.evictions_unlogged = 0;
    sh_.last_eviction_log_ms = now;
    return due;
}

// Frees the owner's oldest retained event, unless what its events hold
// could not add up to `wanted` bytes anyway (then nothing is lost for
// nothing). Clients that missed it get a lagged notice (first_kept moves).
bool locked_zone::drop_oldest_own_event(session_record* owner, std::size_t wanted)
{
    session_stream* stream = owner != nullptr ? owner->stream : nullptr;
    if (stream == nullptr) {
        return false;
    }
    const mcp_session::ring_window window = window_of(stream);
    event_slot* slots = slots_of(stream);
    std::size_t held = 0;
    for (std::uint64_t id = window.oldest(); id < window.next_id; ++id) {
        held += slots[window.slot(id)].size + 1;
    }
    if (held < wanted || window.retained() == 0) {
        return false;
    }
    drop_event(slots[window.slot(window.oldest())]);
    stream->first_kept = window.oldest() + 1;
    return true;
}

void* locked_zone::allocate_with_room(std::size_t size, mcp_session::room_purpose purpose, session_record* owner,
                                      const unix_ms* now, room_report& report)
{
    void* memory = ngx_slab_alloc_locked(zone_.pool, size);
    if (memory != nullptr) {
        return memory;
    }
    const mcp_session::room_policy policy = mcp_session::room_policy_for(purpose);
    // An owner past its expiry could be swept from under its caller: no expiry then.
    if (now != nullptr && (owner == nullptr || !mcp_session::is_expired(times_of(owner), zone_.policy, *now))) {
        for (std::size_t i = 0; i < policy.expire && memory == nullptr; ++i) {
            if (remove_expired(*now, 1) == 0) {
                break;
            }
            ++report.expired;
            memory = ngx_slab_alloc_locked(zone_.pool, size);
        }
    }
    for (std::size_t i = 0; i < policy.evict_unused && memory == nullptr; ++i) {
        if (!evict_oldest(&sh_.unused_by_last_access, owner, false)) {
            break;
        }
        ++report.evicted;
        memory = ngx_slab_alloc_locked(zone_.pool, size);
    }
    // Established sessions only once no unused one is left.
    const bool unused_left = oldest_in(&sh_.unused_by_last_access, owner) != nullptr;
    for (std::size_t i = 0; i < policy.evict_established && memory == nullptr && !unused_left; ++i) {
        if (!evict_oldest(&sh_.by_last_access, owner, true)) {
            break;
        }
        ++report.evicted;
        memory = ngx_slab_alloc_locked(zone_.pool, size);
    }
    while (policy.drop_own_events && memory == nullptr && drop_oldest_own_event(owner, size)) {
        ++report.own_events_dropped;
        memory = ngx_slab_alloc_locked(zone_.pool, size);
    }
    sh_.evictions_unlogged += report.evicted;
    return memory;
}

event_slot* locked_zone::slots_of(session_stream* stream) { return reinterpret_cast<event_slot*>(stream + 1); }

mcp_session::ring_window locked_zone::window_of(const session_stream* stream)
{
    mcp_session::ring_window window;
    window.next_id = stream->next_id;
    window.capacity = stream->capacity;
    window.first_kept = stream->first_kept;
    window.quiet_below = stream->quiet_below;
    return window;
}

session_stream* locked_zone::stream_of(session_record* record)
{
    room_report none;
    return stream_of(record, mcp_session::room_purpose::event, 0, none);
}

session_stream* locked_zone::stream_of(session_record* record, mcp_session::room_purpose purpose, unix_ms now,
                                       room_report& report)
{
    if (record->stream != nullptr) {
        return record->stream;
    }
    const std::uint32_t capacity = zone_.ring_capacity;
    const std::size_t size = sizeof(session_stream) + capacity * sizeof(event_slot);
    auto* stream = static_cast<session_stream*>(
        now == 0 ? ngx_slab_alloc_locked(zone_.pool, size) : allocate_with_room(size, purpose, record, &now, report));
    if (stream == nullptr) {
        return nullptr;
    }
    // A ring given back before: its ids go on, and the markers it held
    // are nothing a client missed.
    stream->next_id = record->next_event_id;
    stream->first_kept = record->next_event_id;
    stream->quiet_below = (record->flags & record_ids_lost) != 0 ? 1 : record->next_event_id;
    // A ring is given back only when it holds no message: what came before
    // was sent or is gone, except after a restart, which does not know.
    stream->delivered = (record->flags & record_ids_lost) != 0 ? 0 : record->next_event_id - 1;
    stream->subscriber = 0;
    stream->subscriber_worker = -1;
    stream->backend_stream_holder = 0;
    stream->listened_elsewhere = 0;
    stream->capacity = capacity;
    for (post_stream_entry& post : stream->posts) {
        post = post_stream_entry{};
        post.recorder_worker = post.subscriber_worker = -1;
    }
    std::memset(slots_of(stream), 0, capacity * sizeof(event_slot));
    record->stream = stream;
    ++sh_.sessions_with_ring;
    ++sh_.counters.rings_allocated;
    return stream;
}

bool locked_zone::release_idle_ring(session_record* record)
{
    session_stream* stream = record->stream;
    // A held backend stream records into the ring, and its claim lives there.
    if (stream == nullptr || stream->subscriber != 0 || stream->backend_stream_holder != 0 || holds_messages(stream) ||
        post_streams_busy(stream)) {
        return false;
    }
    const std::uint64_t next_id = stream->next_id;
    free_stream(record);
    record->next_event_id = next_id;
    return true;
}

void locked_zone::restore_event_ids(session_record* record, std::uint64_t next_id)
{
    if (next_id > 1 && record->stream == nullptr) {
        record->next_event_id = next_id;
        record->flags |= record_ids_lost;
    }
}

void locked_zone::drop_event(event_slot& slot)
{
    if (slot.data != nullptr) {
        ngx_slab_free_locked(zone_.pool, slot.data);
    }
    slot = event_slot{};
}

// The session's ring goes back to the zone; its listener, in whichever
// worker, is woken to end the stream.
void locked_zone::free_stream(session_record* record)
{
    session_stream* stream = record->stream;
    if (stream == nullptr) {
        return;
    }
    if (stream->subscriber != 0) {
        --sh_.open_streams;
        notify(stream->subscriber_worker, stream->subscriber);
    }
    for (const post_stream_entry& post : stream->posts) {
        if (post.subscriber != 0) {
            --sh_.open_streams;
            notify(post.subscriber_worker, post.subscriber);
        }
    }
    --sh_.sessions_with_ring;
    ++sh_.counters.rings_freed;
    event_slot* slots = slots_of(stream);
    for (std::uint32_t i = 0; i < stream->capacity; ++i) {
        drop_event(slots[i]);
    }
    ngx_slab_free_locked(zone_.pool, stream);
    record->stream = nullptr;
}

void locked_zone::free_extras(session_record* record)
{
    session_extras* extras = record->extras;
    if (extras == nullptr) {
        return;
    }
    backend_index_entry* entry = entry_of(extras);
    if (entry != nullptr && entry->indexed) {
        ngx_rbtree_delete(&sh_.backend_ids, &entry->node);
    }
    ngx_slab_free_locked(zone_.pool, extras);
    record->extras = nullptr;
}

bool locked_zone::set_extras(session_record* record, const session_extras& fields, std::string_view backend_id,
                             std::string_view initialize)
{
    if (fields.bound == 0 && backend_id.empty() && initialize.empty()) {
        free_extras(record);
        return true;
    }
    const std::size_t size = sizeof(session_extras) +
                             (backend_id.empty() ? 0 : sizeof(backend_index_entry) + backend_id.size()) +
                             initialize.size();
    room_report report;
    auto* extras = static_cast<session_extras*>(
        allocate_with_room(size, mcp_session::room_purpose::session, record, nullptr, report));
    if (extras == nullptr) {
        return false;
    }
    *extras = fields;
    extras->backend_id_size = static_cast<std::uint16_t>(backend_id.size());
    extras->initialize_size = static_cast<std::uint16_t>(initialize.size());
    backend_index_entry* entry = entry_of(extras);
    u_char* tail = entry != nullptr ? reinterpret_cast<u_char*>(entry + 1) : reinterpret_cast<u_char*>(extras + 1);
    if (entry != nullptr) {
        std::memset(entry, 0, sizeof(*entry));
        entry->owner = record;
        std::memcpy(tail, backend_id.data(), backend_id.size());
        tail += backend_id.size();
    }
    if (!initialize.empty()) {
        std::memcpy(tail, initialize.data(), initialize.size());  // before the old extras it may point into go
    }
    free_extras(record);
    record->extras = extras;
    if (entry == nullptr) {
        return true;
    }
    const auto key = session_key::from_id(backend_id);
    if (!key) {
        return true;  // could never be presented in Mcp-Session-Id: nothing to find it by
    }
    entry->node.key = key->hash(sh_.hash_seed);
    // The newest holder of an id is the one found.
    if (session_record* previous = find_by_backend_id(backend_id)) {
        backend_index_entry* old = entry_of(previous->extras);
        ngx_rbtree_delete(&sh_.backend_ids, &old->node);
        old->indexed = 0;
    }
    ngx_rbtree_insert(&sh_.backend_ids, &entry->node);
    entry->indexed = 1;
    return true;
}

bool locked_zone::set_backend_id(session_record* record, std::string_view backend_id, std::string_view initialize)
{
    const session_extras fields = record->extras != nullptr ? *record->extras : session_extras{};
    if (!set_extras(record, fields, backend_id, initialize)) {
        return false;
    }
    record->flags &= ~record_no_backend_stream;  // a new backend session may offer a stream of its own
    return true;
}

std::string_view locked_zone::initialize_of(const session_record* record)
{
    const session_extras* extras = record->extras;
    if (extras == nullptr || extras->initialize_size == 0) {
        return {};
    }
    const auto* tail = reinterpret_cast<const u_char*>(extras + 1);
    if (extras->backend_id_size > 0) {
        tail += sizeof(backend_index_entry) + extras->backend_id_size;
    }
    return std::string_view(reinterpret_cast<const char*>(tail), extras->initialize_size);
}

std::string_view locked_zone::backend_id_of(const session_record* record)
{
    if (record->extras == nullptr || record->extras->backend_id_size == 0) {
        return {};
    }
    const auto* entry = reinterpret_cast<const backend_index_entry*>(record->extras + 1);
    return std::string_view(reinterpret_cast<const char*>(entry + 1), record->extras->backend_id_size);
}

session_record* locked_zone::find_by_backend_id(std::string_view backend_id)
{
    const auto key = session_key::from_id(backend_id);
    if (!key) {
        return nullptr;
    }
    const ngx_rbtree_key_t hash = key->hash(sh_.hash_seed);
    ngx_rbtree_node_t* node = sh_.backend_ids.root;
    ngx_rbtree_node_t* sentinel = sh_.backend_ids.sentinel;
    while (node != sentinel) {
        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }
        auto* entry = reinterpret_cast<backend_index_entry*>(node);
        const int order = backend_id.compare(backend_id_of(entry->owner));
        if (order == 0) {
            return entry->owner;
        }
        node = order < 0 ? node->left : node->right;
    }
    return nullptr;
}

void locked_zone::notify(std::int32_t worker, std::uint64_t token)
{
    if (worker < 0) {
        return;
    }
    wake_.set(static_cast<std::size_t>(worker));
    wakes_anyone_ = true;
    if (static_cast<std::size_t>(worker) >= inbox_workers) {
        return;  // no inbox: that worker scans all its streams
    }
    worker_inbox* inbox = sh_.inboxes[worker];
    if (inbox == nullptr) {
        return;  // no inbox (no room at worker start): that worker scans all its streams
    }
    if (inbox->count == inbox_capacity) {
        inbox->overflow = 1;
        return;
    }
    inbox->tokens[inbox->count++] = token;
}

bool locked_zone::open_inbox(ngx_int_t worker)
{
    if (worker >= 0 && static_cast<std::size_t>(worker) < inbox_workers && sh_.inboxes[worker] == nullptr) {
        sh_.inboxes[worker] = static_cast<worker_inbox*>(ngx_slab_calloc_locked(zone_.pool, sizeof(worker_inbox)));
        return sh_.inboxes[worker] != nullptr;
    }
    return true;  // open already, or a number beyond the tracked ones (see claim_worker_number)
}

std::size_t locked_zone::release_streams_of(std::int32_t worker)
{
    std::size_t released = 0;
    for_each_by_creation([&](session_record* r) {
        session_stream* stream = r->stream;
        if (stream == nullptr) {
            return;
        }
        if (stream->subscriber != 0 && stream->subscriber_worker == worker) {
            stream->subscriber = 0;
            stream->subscriber_worker = -1;
            --sh_.open_streams;
            ++released;
        }
        for (post_stream_entry& post : stream->posts) {
            if (post.subscriber != 0 && post.subscriber_worker == worker) {
                post.subscriber = 0;
                post.subscriber_worker = -1;
                --sh_.open_streams;
                ++released;
            }
            // The answer it was reading is gone with it: a resuming GET
            // ends after what was recorded.
            if (post.recording != 0 && post.recorder_worker == worker) {
                post.recording = 0;
                if (post.subscriber != 0) {
                    notify(post.subscriber_worker, post.subscriber);
                }
            }
        }
        release_idle_ring(r);
    });
    return released;
}

bool locked_zone::drain_inbox(ngx_int_t worker, std::vector<std::uint64_t>& out)
{
    if (worker < 0 || static_cast<std::size_t>(worker) >= inbox_workers || sh_.inboxes[worker] == nullptr) {
        return true;
    }
    worker_inbox* inbox = sh_.inboxes[worker];
    const bool everything = inbox->overflow != 0;
    const std::size_t n = std::min<std::size_t>(inbox->count, out.capacity() - out.size());
    out.insert(out.end(), inbox->tokens, inbox->tokens + n);
    inbox->count = 0;
    inbox->overflow = 0;
    return everything;
}

zone_transaction::zone_transaction(zone_conf& zone) : pool_(zone.pool), zone_(zone)
{
    ngx_shmtx_lock(&pool_->mutex);
}

zone_transaction::~zone_transaction()
{
    ngx_shmtx_unlock(&pool_->mutex);
    if (zone_.wakes_anyone()) {
        ring_doorbells(zone_.to_wake());
    }
}

ngx_int_t init_zone(ngx_shm_zone_t* shm_zone, void* data) noexcept
{
    auto* zone = static_cast<zone_conf*>(shm_zone->data);
    auto* previous = static_cast<zone_conf*>(data);
    zone->pool = reinterpret_cast<ngx_slab_pool_t*>(shm_zone->shm.addr);

    if (previous != nullptr) {
        if (previous->shared->layout != layout_version) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "mcp_session zone \"%V\" was created by an incompatible build of the module; "
                          "rename the zone or change its size to start it afresh",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }
        zone->shared = previous->shared;
        return prepare_zone_for_cycle(*zone);
    }
    if (shm_zone->shm.exists) {
        zone->shared = static_cast<zone_shared*>(zone->pool->data);
        return prepare_zone_for_cycle(*zone);
    }

    if (!session_index::addressable(shm_zone->shm.size)) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "mcp_session zone \"%V\" is too large (at most 512G)", &shm_zone->shm.name);
        return NGX_ERROR;
    }
    // The session index's buckets follow zone_shared in one allocation.
    static_assert(sizeof(zone_shared) % alignof(record_ref) == 0);
    auto* sh = static_cast<zone_shared*>(
        ngx_slab_calloc(zone->pool, sizeof(zone_shared) + session_index::bytes_for(shm_zone->shm.size)));
    if (sh == nullptr) {
        return NGX_ERROR;
    }
    session_index::place(sh->index, sh + 1, shm_zone->shm.size);
    sh->layout = layout_version;
    std::random_device os_random;
    sh->hash_seed = (static_cast<std::uint64_t>(os_random()) << 32) | os_random();
    ngx_rbtree_init(&sh->backend_ids, &sh->backend_sentinel, insert_by_hash<compare_backend_nodes>);
    ngx_queue_init(&sh->by_last_access);
    ngx_queue_init(&sh->unused_by_last_access);
    ngx_queue_init(&sh->by_creation);
    zone->pool->data = sh;
    zone->shared = sh;
    // Counters of the traffic; a zone too small for them works without.
    sh->traffic = static_cast<traffic_table*>(ngx_slab_calloc(zone->pool, sizeof(traffic_table)));

    // Names the zone in the slab allocator's own messages; running out of
    // memory is handled (eviction), so the allocator need not log it.
    static constexpr char prefix[] = " in mcp_session zone \"";
    const size_t len = sizeof(prefix) - 1 + shm_zone->shm.name.len + 2;
    auto* log_ctx = static_cast<u_char*>(ngx_slab_alloc(zone->pool, len));
    if (log_ctx == nullptr) {
        return NGX_ERROR;
    }
    ngx_sprintf(log_ctx, "%s%V\"%Z", prefix, &shm_zone->shm.name);
    zone->pool->log_ctx = log_ctx;
    zone->pool->log_nomem = 0;
    zone->made_afresh = true;  // restored from its state file in init_module
    return prepare_zone_for_cycle(*zone);
}

bool locked_zone::pin(session_record* record, std::string_view name)
{
    unpin(record);
    if (name.empty()) {
        return true;
    }
    if (name.size() > max_pinned_name) {
        return false;
    }
    if (sh_.pins == nullptr) {
        sh_.pins = static_cast<upstream_pin*>(ngx_slab_calloc_locked(zone_.pool, pin_slots * sizeof(upstream_pin)));
        if (sh_.pins == nullptr) {
            return false;
        }
    }
    upstream_pin* free_slot = nullptr;
    for (std::size_t i = 0; i < pin_slots; ++i) {
        upstream_pin& slot = sh_.pins[i];
        const bool same = slot.size == name.size() && std::memcmp(slot.name, name.data(), name.size()) == 0;
        if (same || (slot.sessions == 0 && free_slot == nullptr)) {
            free_slot = &slot;
            if (same) {
                break;
            }
        }
    }
    if (free_slot == nullptr) {
        return false;
    }
    free_slot->size = static_cast<std::uint8_t>(name.size());
    std::memcpy(free_slot->name, name.data(), name.size());
    ++free_slot->sessions;
    record->pin = static_cast<std::uint8_t>(free_slot - sh_.pins + 1);
    return true;
}

void locked_zone::unpin(session_record* record)
{
    if (record->pin != 0 && record->pin <= pin_slots && sh_.pins != nullptr) {
        upstream_pin& slot = sh_.pins[record->pin - 1];
        if (slot.sessions > 0) {
            --slot.sessions;
        }
    }
    record->pin = 0;
}

std::string_view locked_zone::pinned_server(const session_record* record) const
{
    if (record->pin == 0 || record->pin > pin_slots || sh_.pins == nullptr) {
        return {};
    }
    const upstream_pin& slot = sh_.pins[record->pin - 1];
    return std::string_view(reinterpret_cast<const char*>(slot.name), slot.size);
}

}  // namespace mcp_ngx
