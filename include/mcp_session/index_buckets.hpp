// The shape of a zone's session index: how many buckets a zone of a given
// size gets, and which bucket a session's hash falls in.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mcp_session {

// A session takes at least one 128-byte slab chunk, so with a bucket per
// 512 bytes of zone a full zone averages at most 4 sessions a bucket, and
// the bucket array (8 bytes a bucket: a chain and its filter) costs 1/64
// of the zone.
inline constexpr std::size_t zone_bytes_per_bucket = 512;

// At least one bucket; never more than a 32-bit bucket number holds.
std::uint32_t index_buckets_for(std::size_t zone_bytes);

// Monotone in `hash`: walking the buckets in order, and each bucket's
// sessions in ascending hash, walks every session in hash order, whatever
// the bucket count (the order a state save's cursor relies on).
constexpr std::uint32_t bucket_of(std::uint64_t hash, std::uint32_t buckets)
{
    return static_cast<std::uint32_t>(((hash >> 32) * buckets) >> 32);
}

// The bit a hash sets in its bucket's filter: from its low five bits,
// which bucket_of (the top half) does not look at.
constexpr std::uint32_t filter_bit(std::uint64_t hash) { return std::uint32_t{1} << (hash & 31); }

// The highest hash that falls in `bucket`.
std::uint64_t last_hash_of(std::uint32_t bucket, std::uint32_t buckets);

}  // namespace mcp_session
