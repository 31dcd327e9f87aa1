#include "mcp_session/expiry.hpp"

#include <algorithm>
#include <limits>

namespace mcp_session {
namespace {

unix_ms saturating_add(unix_ms a, unix_ms b)
{
    if (b > 0 && a > std::numeric_limits<unix_ms>::max() - b) {
        return std::numeric_limits<unix_ms>::max();
    }
    return a + b;
}

}  // namespace

session_state classify(const session_times& times, const expiry_policy& policy, unix_ms now)
{
    if (now >= saturating_add(times.created_ms, policy.max_lifetime_ms)) {
        return session_state::expired_lifetime;
    }
    if (now >= saturating_add(times.last_access_ms, policy.idle_timeout_ms)) {
        return session_state::expired_idle;
    }
    return session_state::live;
}

unix_ms expires_at(const session_times& times, const expiry_policy& policy)
{
    return std::min(saturating_add(times.created_ms, policy.max_lifetime_ms),
                    saturating_add(times.last_access_ms, policy.idle_timeout_ms));
}

session_times touched(const session_times& times, unix_ms now)
{
    return session_times{times.created_ms, std::max(times.last_access_ms, now)};
}

unix_ms touch_granularity_ms(const expiry_policy& policy)
{
    return std::clamp<unix_ms>(policy.idle_timeout_ms / 16, 0, 1000);
}

bool touch_is_due(const session_times& times, const expiry_policy& policy, unix_ms now)
{
    return now - times.last_access_ms >= touch_granularity_ms(policy);
}

}  // namespace mcp_session
