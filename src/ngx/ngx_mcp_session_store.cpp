#include "ngx_mcp_session_store.hpp"

#include <cstring>
#include <random>
#include <type_traits>

namespace mcp_ngx {

using mcp_session::session_key;
using mcp_session::session_times;
using mcp_session::unix_ms;

// Bumped whenever the layout below changes, so a reload that loads a
// different build of the module never reads the old layout as the new.
constexpr std::uint32_t layout_version = 1;

struct zone_shared {
    std::uint32_t layout;
    std::uint64_t hash_seed;
    ngx_rbtree_t tree;
    ngx_rbtree_node_t sentinel;
    ngx_queue_t by_last_access;  // head: least recently used
    ngx_queue_t by_creation;     // head: oldest
    std::uint64_t sessions;
    unix_ms next_sweep_ms;
    unix_ms last_eviction_log_ms;
    std::uint64_t evictions_unlogged;
};

namespace {

// A session lives in one slab allocation: the rbtree node's link fields,
// then this record laid over the node's colour byte onwards (nginx's own
// idiom: the node's tail padding is reused), then the id bytes.
struct session_record {
    u_char color;  // ngx_rbtree_node_t::color
    u_char data;   // ngx_rbtree_node_t::data
    std::uint8_t id_size;
    std::uint8_t packed_uuid;
    std::uint32_t reserved;
    ngx_queue_t by_last_access;
    ngx_queue_t by_creation;
    unix_ms created_ms;
    unix_ms last_access_ms;
};

static_assert(std::is_standard_layout_v<session_record>);
static_assert(std::is_trivially_copyable_v<session_record>);
static_assert(std::is_standard_layout_v<zone_shared>);
static_assert(std::is_trivially_copyable_v<zone_shared>);

constexpr std::size_t record_offset = offsetof(ngx_rbtree_node_t, color);
static_assert(record_offset % alignof(session_record) == 0);

constexpr std::size_t node_size(std::size_t id_size) { return record_offset + sizeof(session_record) + id_size; }

// An idle session with a packed UUID fits the slab's 128-byte class.
static_assert(node_size(session_key::packed_uuid_size) <= 128);

session_record* record_of(ngx_rbtree_node_t* node)
{
    return reinterpret_cast<session_record*>(reinterpret_cast<u_char*>(node) + record_offset);
}

ngx_rbtree_node_t* node_of(session_record* record)
{
    return reinterpret_cast<ngx_rbtree_node_t*>(reinterpret_cast<u_char*>(record) - record_offset);
}

u_char* id_bytes(session_record* record) { return reinterpret_cast<u_char*>(record + 1); }

session_times times_of(const session_record* record) { return {record->created_ms, record->last_access_ms}; }

// Equal hashes are ordered by their stored bytes, so lookup and insert
// agree on where a colliding id sits.
int compare_stored(session_record* a, session_record* b)
{
    if (a->packed_uuid != b->packed_uuid) {
        return a->packed_uuid < b->packed_uuid ? -1 : 1;
    }
    if (a->id_size != b->id_size) {
        return a->id_size < b->id_size ? -1 : 1;
    }
    return std::memcmp(id_bytes(a), id_bytes(b), a->id_size);
}

int compare_key(const session_key& key, session_record* record)
{
    const auto packed = static_cast<std::uint8_t>(key.packed_uuid());
    if (packed != record->packed_uuid) {
        return packed < record->packed_uuid ? -1 : 1;
    }
    if (key.size() != record->id_size) {
        return key.size() < record->id_size ? -1 : 1;
    }
    return std::memcmp(key.data(), id_bytes(record), key.size());
}

void insert_session_node(ngx_rbtree_node_t* temp, ngx_rbtree_node_t* node, ngx_rbtree_node_t* sentinel)
{
    ngx_rbtree_node_t** link;
    for (;;) {
        if (node->key != temp->key) {
            link = (node->key < temp->key) ? &temp->left : &temp->right;
        } else {
            link = compare_stored(record_of(node), record_of(temp)) < 0 ? &temp->left : &temp->right;
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

class zone_lock {
public:
    explicit zone_lock(ngx_slab_pool_t* pool) : pool_(pool) { ngx_shmtx_lock(&pool_->mutex); }
    ~zone_lock() { ngx_shmtx_unlock(&pool_->mutex); }
    zone_lock(const zone_lock&) = delete;
    zone_lock& operator=(const zone_lock&) = delete;

private:
    ngx_slab_pool_t* pool_;
};

// Operations on the shared structures; every method expects the lock held.
class locked_zone {
public:
    explicit locked_zone(zone_conf& zone) : zone_(zone), sh_(*zone.shared) {}

    session_record* find(const session_key& key)
    {
        const ngx_rbtree_key_t hash = key.hash(sh_.hash_seed);
        ngx_rbtree_node_t* node = sh_.tree.root;
        ngx_rbtree_node_t* sentinel = sh_.tree.sentinel;
        while (node != sentinel) {
            if (hash != node->key) {
                node = (hash < node->key) ? node->left : node->right;
                continue;
            }
            const int order = compare_key(key, record_of(node));
            if (order == 0) {
                return record_of(node);
            }
            node = order < 0 ? node->left : node->right;
        }
        return nullptr;
    }

    void touch(session_record* record, unix_ms now)
    {
        const session_times updated = mcp_session::touched(times_of(record), now);
        record->last_access_ms = updated.last_access_ms;
        ngx_queue_remove(&record->by_last_access);
        ngx_queue_insert_tail(&sh_.by_last_access, &record->by_last_access);
    }

    void remove(session_record* record)
    {
        ngx_queue_remove(&record->by_last_access);
        ngx_queue_remove(&record->by_creation);
        ngx_rbtree_node_t* node = node_of(record);
        ngx_rbtree_delete(&sh_.tree, node);
        ngx_slab_free_locked(zone_.pool, node);
        --sh_.sessions;
    }

    session_record* allocate(const session_key& key)
    {
        auto* node = static_cast<ngx_rbtree_node_t*>(ngx_slab_alloc_locked(zone_.pool, node_size(key.size())));
        if (node == nullptr) {
            return nullptr;
        }
        node->key = key.hash(sh_.hash_seed);
        session_record* record = record_of(node);
        record->id_size = static_cast<std::uint8_t>(key.size());
        record->packed_uuid = static_cast<std::uint8_t>(key.packed_uuid());
        record->reserved = 0;
        std::memcpy(id_bytes(record), key.data(), key.size());
        return record;
    }

    void link(session_record* record, unix_ms now)
    {
        record->created_ms = now;
        record->last_access_ms = now;
        ngx_rbtree_insert(&sh_.tree, node_of(record));
        ngx_queue_insert_tail(&sh_.by_last_access, &record->by_last_access);
        ngx_queue_insert_tail(&sh_.by_creation, &record->by_creation);
        ++sh_.sessions;
    }

    // Adapts one of the two orders for mcp_session::sweep_expired.
    class order {
    public:
        order(locked_zone& zone, ngx_queue_t* head, std::size_t link_offset)
            : zone_(zone), head_(head), link_offset_(link_offset)
        {
        }
        bool empty() const { return ngx_queue_empty(head_); }
        session_times oldest() const { return times_of(first()); }
        void remove_oldest() { zone_.remove(first()); }

    private:
        session_record* first() const
        {
            return reinterpret_cast<session_record*>(reinterpret_cast<u_char*>(ngx_queue_head(head_)) - link_offset_);
        }
        locked_zone& zone_;
        ngx_queue_t* head_;
        std::size_t link_offset_;
    };

    order lru_order() { return order(*this, &sh_.by_last_access, offsetof(session_record, by_last_access)); }
    order creation_order() { return order(*this, &sh_.by_creation, offsetof(session_record, by_creation)); }

    std::size_t remove_expired(unix_ms now, std::size_t budget)
    {
        order by_access = lru_order();
        order by_age = creation_order();
        std::size_t removed = mcp_session::sweep_expired(by_access, zone_.policy, now, budget);
        removed += mcp_session::sweep_expired(by_age, zone_.policy, now, budget - removed);
        return removed;
    }

    bool evict_least_recently_used()
    {
        order by_access = lru_order();
        if (by_access.empty()) {
            return false;
        }
        by_access.remove_oldest();
        return true;
    }

    // Counts an eviction; answers how many to log now (at most once a second).
    std::size_t note_evictions(std::size_t evicted, unix_ms now)
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

    zone_shared& shared() { return sh_; }

private:
    zone_conf& zone_;
    zone_shared& sh_;
};

// Bounded work per request, as limit_req does: a couple of expired
// sessions are reclaimed before each allocation.
constexpr std::size_t expire_before_insert = 2;

}  // namespace

lookup_result session_store::validate(const session_key& key, unix_ms now)
{
    zone_lock guard(zone_.pool);
    locked_zone zone(zone_);
    session_record* record = zone.find(key);
    if (record == nullptr) {
        return lookup_result::unknown;
    }
    if (mcp_session::is_expired(times_of(record), zone_.policy, now)) {
        zone.remove(record);
        return lookup_result::expired;
    }
    zone.touch(record, now);
    return lookup_result::valid;
}

insert_outcome session_store::record(const session_key& key, unix_ms now)
{
    insert_outcome outcome;
    zone_lock guard(zone_.pool);
    locked_zone zone(zone_);

    if (session_record* known = zone.find(key)) {
        zone.touch(known, now);
        outcome.stored = true;
        outcome.already_known = true;
        return outcome;
    }

    zone.remove_expired(now, expire_before_insert);
    session_record* fresh = zone.allocate(key);
    while (fresh == nullptr && zone.evict_least_recently_used()) {
        ++outcome.evicted;
        fresh = zone.allocate(key);
    }
    outcome.evictions_to_log = zone.note_evictions(outcome.evicted, now);
    if (fresh == nullptr) {
        return outcome;
    }
    zone.link(fresh, now);
    outcome.stored = true;
    return outcome;
}

bool session_store::remove(const session_key& key)
{
    zone_lock guard(zone_.pool);
    locked_zone zone(zone_);
    session_record* record = zone.find(key);
    if (record == nullptr) {
        return false;
    }
    zone.remove(record);
    return true;
}

std::size_t session_store::sweep_if_due(unix_ms now, std::size_t budget, bool* more)
{
    zone_lock guard(zone_.pool);
    locked_zone zone(zone_);
    zone_shared& sh = zone.shared();
    *more = false;
    if (!zone_.sweep.due(sh.next_sweep_ms, now)) {
        return 0;
    }
    const std::size_t removed = zone.remove_expired(now, budget);
    // A sweep cut short by its budget keeps the slot and continues soon.
    *more = removed == budget;
    if (!*more) {
        sh.next_sweep_ms = zone_.sweep.next_after(now);
    }
    return removed;
}

std::size_t session_store::count()
{
    zone_lock guard(zone_.pool);
    return static_cast<std::size_t>(zone_.shared->sessions);
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
        return NGX_OK;
    }
    if (shm_zone->shm.exists) {
        zone->shared = static_cast<zone_shared*>(zone->pool->data);
        return NGX_OK;
    }

    auto* sh = static_cast<zone_shared*>(ngx_slab_calloc(zone->pool, sizeof(zone_shared)));
    if (sh == nullptr) {
        return NGX_ERROR;
    }
    sh->layout = layout_version;
    std::random_device os_random;
    sh->hash_seed = (static_cast<std::uint64_t>(os_random()) << 32) | os_random();
    ngx_rbtree_init(&sh->tree, &sh->sentinel, insert_session_node);
    ngx_queue_init(&sh->by_last_access);
    ngx_queue_init(&sh->by_creation);
    zone->pool->data = sh;
    zone->shared = sh;

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
    return NGX_OK;
}

}  // namespace mcp_ngx
