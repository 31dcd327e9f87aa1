#include "ngx_mcp_session_index.hpp"

#include "ngx_mcp_session_zone.hpp"

#include "mcp_session/index_buckets.hpp"

#include <limits>

namespace mcp_ngx {

using mcp_session::session_key;

// Chains stay short against ids chosen to collide: the hash is keyed with
// the zone's random seed (made at zone start, never sent anywhere), so
// which ids share a bucket cannot be known from outside; and only ids a
// backend or nginx issued are ever inserted, never one a client made up.

bool session_index::addressable(std::size_t zone_size)
{
    return zone_size / record_ref_unit <= std::numeric_limits<record_ref>::max();
}

std::size_t session_index::bytes_for(std::size_t zone_size)
{
    return std::size_t{mcp_session::index_buckets_for(zone_size)} * sizeof(index_bucket);
}

void session_index::place(session_buckets& buckets, void* memory, std::size_t zone_size)
{
    buckets.heads = static_cast<index_bucket*>(memory);
    buckets.count = mcp_session::index_buckets_for(zone_size);
}

std::uint32_t session_index::bucket_of(std::uint64_t hash) const
{
    return mcp_session::bucket_of(hash, buckets_.count);
}

session_record* session_index::record_at(record_ref ref) const
{
    return ref == 0 ? nullptr : reinterpret_cast<session_record*>(base_ + std::size_t{ref} * record_ref_unit);
}

record_ref session_index::ref_of(const session_record* record) const
{
    return static_cast<record_ref>(static_cast<std::size_t>(reinterpret_cast<const u_char*>(record) - base_) /
                                   record_ref_unit);
}

session_record* session_index::next(const session_record* record) const { return record_at(record->next); }

session_record* session_index::find(const session_key& key, std::uint64_t hash) const
{
    index_bucket& bucket = buckets_.heads[bucket_of(hash)];
    if (!(bucket.filter & mcp_session::filter_bit(hash))) {
        return nullptr;  // no record of the chain has this hash
    }
    std::uint32_t held = 0;
    for (session_record* r = record_at(bucket.head); r != nullptr; r = next(r)) {
        if (r->hash == hash &&
            key.equals(reinterpret_cast<const std::uint8_t*>(r + 1), r->id_size,
                       static_cast<mcp_session::id_form>(r->id_form))) {
            return r;
        }
        held |= mcp_session::filter_bit(r->hash);
    }
    bucket.filter = held;  // the bits of removed records go
    return nullptr;
}

void session_index::insert(session_record* record)
{
    // At the head: an insert reads no other record.
    index_bucket& bucket = buckets_.heads[bucket_of(record->hash)];
    record->next = bucket.head;
    bucket.head = ref_of(record);
    bucket.filter |= mcp_session::filter_bit(record->hash);
}

void session_index::erase(session_record* record)
{
    const record_ref ref = ref_of(record);
    index_bucket& bucket = buckets_.heads[bucket_of(record->hash)];
    for (record_ref* link = &bucket.head; *link != 0; link = &record_at(*link)->next) {
        if (*link == ref) {
            *link = record->next;
            record->next = 0;
            break;
        }
    }
    if (bucket.head == 0) {
        bucket.filter = 0;
    }
}

namespace {

// (hash, place) order, which puts ids of equal hash next to each other.
bool before(std::uint64_t hash, const session_record* place, const session_record* other)
{
    return hash < other->hash || (hash == other->hash && place < other);
}

}  // namespace

template <typename Wanted>
session_record* session_index::least(std::uint32_t bucket, Wanted wanted) const
{
    session_record* best = nullptr;
    for (session_record* r = record_at(buckets_.heads[bucket].head); r != nullptr; r = next(r)) {
        if (wanted(r) && (best == nullptr || before(r->hash, r, best))) {
            best = r;
        }
    }
    return best;
}

session_record* session_index::first_in_order(std::uint32_t bucket, const std::uint64_t* above) const
{
    return least(bucket, [above](const session_record* r) { return above == nullptr || r->hash > *above; });
}

session_record* session_index::next_in_order(std::uint32_t bucket, std::uint64_t hash,
                                             const session_record* place) const
{
    return least(bucket, [hash, place](const session_record* r) { return before(hash, place, r); });
}

}  // namespace mcp_ngx
