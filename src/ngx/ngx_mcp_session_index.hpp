// The zone's index of sessions by id: a bucket array made once, at zone
// start, in the slab allocation of zone_shared; each bucket a chain of
// records, linked through the records themselves, newest first, and a
// filter of the hashes in its chain. A lookup reads one bucket and, unless
// the filter rules the id out, the chain's records up to the id's.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include "mcp_session/session_key.hpp"

#include <cstddef>
#include <cstdint>

namespace mcp_ngx {

struct session_record;

// Where a record sits in the zone, in 128-byte units from the zone's start
// (every record is a slab chunk of 128 bytes or more, aligned to its size),
// so a bucket and a chain link take 4 bytes each. 0 is no record: the
// slab pool's header is there.
using record_ref = std::uint32_t;
inline constexpr std::size_t record_ref_unit = 128;

// A bucket: its chain's first record, and one bit for each record in the
// chain (mcp_session::filter_bit of its hash), so most lookups of an id
// the zone does not hold (every creation's) read no record. A removal
// leaves its bit; the next lookup that walks the whole chain in vain sets
// the filter to what the chain holds.
struct index_bucket {
    record_ref head;
    std::uint32_t filter;
};

// Kept in zone_shared; the array is found again through it on reload.
struct session_buckets {
    index_bucket* heads;
    std::uint32_t count;
};

// Operations on the index; the zone lock must be held.
class session_index {
public:
    session_index(session_buckets& buckets, ngx_slab_pool_t* pool) : buckets_(buckets), base_(pool_base(pool)) {}

    // At zone start: whether every record of a zone this large has a
    // record_ref, and the bytes its bucket array takes (allocated with
    // zone_shared, so a small zone spends no slab page of its own on it).
    static bool addressable(std::size_t zone_size);
    static std::size_t bytes_for(std::size_t zone_size);
    // `memory`: bytes_for(zone_size) zeroed bytes.
    static void place(session_buckets& buckets, void* memory, std::size_t zone_size);

    // `hash` is the key's hash with the zone's seed; ids are compared in
    // full once the hashes are equal. May rewrite the bucket's filter.
    session_record* find(const mcp_session::session_key& key, std::uint64_t hash) const;
    // Asks the CPU for the bucket of `hash` ahead of find(), before the
    // zone lock is taken: at a million sessions the bucket is seldom
    // cached. Safe without the lock (the bucket array never moves).
    void prefetch(std::uint64_t hash) const { __builtin_prefetch(&buckets_.heads[bucket_of(hash)]); }
    void insert(session_record* record);  // record->hash is set
    void erase(session_record* record);

    // A walk in hash order: buckets ascending, and in each bucket its
    // records by (hash, place in the zone), chosen one after the other
    // (chains are short and kept newest first).
    std::uint32_t bucket_count() const { return buckets_.count; }
    std::uint32_t bucket_of(std::uint64_t hash) const;
    // The bucket's first record in that order; with `above`, the first
    // whose hash is above it.
    session_record* first_in_order(std::uint32_t bucket, const std::uint64_t* above) const;
    // The bucket's record that follows (hash, place) in that order.
    session_record* next_in_order(std::uint32_t bucket, std::uint64_t hash, const session_record* place) const;

private:
    static u_char* pool_base(ngx_slab_pool_t* pool) { return reinterpret_cast<u_char*>(pool); }
    session_record* record_at(record_ref ref) const;
    record_ref ref_of(const session_record* record) const;
    session_record* next(const session_record* record) const;
    // The bucket's least record in (hash, place) order among those `wanted`.
    template <typename Wanted>
    session_record* least(std::uint32_t bucket, Wanted wanted) const;

    session_buckets& buckets_;
    u_char* base_;
};

}  // namespace mcp_ngx
