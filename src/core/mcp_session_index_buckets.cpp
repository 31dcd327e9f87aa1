#include "mcp_session/index_buckets.hpp"

#include <algorithm>
#include <limits>

namespace mcp_session {

std::uint32_t index_buckets_for(std::size_t zone_bytes)
{
    const std::size_t wanted = std::max<std::size_t>(zone_bytes / zone_bytes_per_bucket, 1);
    return static_cast<std::uint32_t>(std::min<std::size_t>(wanted, std::numeric_limits<std::uint32_t>::max()));
}

std::uint64_t last_hash_of(std::uint32_t bucket, std::uint32_t buckets)
{
    if (bucket + 1 >= buckets) {
        return std::numeric_limits<std::uint64_t>::max();
    }
    // The smallest top half of a hash that bucket_of puts past `bucket`:
    // ceil((bucket + 1) * 2^32 / buckets); everything below it is in.
    const std::uint64_t next_top = ((static_cast<std::uint64_t>(bucket + 1) << 32) + buckets - 1) / buckets;
    return (next_top << 32) - 1;
}

}  // namespace mcp_session
