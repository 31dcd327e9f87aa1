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
    return std::size_t{mcp_session::index_buckets_for(zone_size)} * sizeof(record_ref);
}

void session_index::place(session_buckets& buckets, void* memory, std::size_t zone_size)
{
    buckets.heads = static_cast<record_ref*>(memory);
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
    for (session_record* r = head(bucket_of(hash)); r != nullptr; r = next(r)) {
        if (r->hash > hash) {
            break;  // the chain ascends: the id is not in it
        }
        if (r->hash == hash &&
            key.equals(reinterpret_cast<const std::uint8_t*>(r + 1), r->id_size,
                       static_cast<mcp_session::id_form>(r->id_form))) {
            return r;
        }
    }
    return nullptr;
}

void session_index::insert(session_record* record)
{
    // After any equal hash: a walk sees colliding ids in insertion order.
    record_ref* link = &buckets_.heads[bucket_of(record->hash)];
    while (*link != 0 && record_at(*link)->hash <= record->hash) {
        link = &record_at(*link)->next;
    }
    record->next = *link;
    *link = ref_of(record);
}

void session_index::erase(session_record* record)
{
    const record_ref ref = ref_of(record);
    for (record_ref* link = &buckets_.heads[bucket_of(record->hash)]; *link != 0; link = &record_at(*link)->next) {
        if (*link == ref) {
            *link = record->next;
            record->next = 0;
            return;
        }
    }
}

}  // namespace mcp_ngx
