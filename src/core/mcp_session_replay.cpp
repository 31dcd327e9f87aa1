#include "mcp_session/replay.hpp"

#include <algorithm>

namespace mcp_session {

replay_plan plan_replay(std::uint64_t cursor, const ring_window& ring)
{
    replay_plan plan;
    const std::uint64_t newest = ring.newest();
    const std::uint64_t position = std::min(cursor, newest);
    const std::uint64_t wanted = position + 1;
    const std::uint64_t oldest = ring.oldest();
    const std::uint64_t missed_from = std::max(wanted, ring.quiet_below);
    plan.dropped = missed_from < oldest ? oldest - missed_from : 0;
    plan.first_id = std::max(wanted, oldest);
    plan.last_id = newest;
    return plan;
}

}  // namespace mcp_session
