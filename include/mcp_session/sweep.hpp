// The periodic sweep: which sessions it removes and when it runs.
#pragma once

#include "mcp_session/expiry.hpp"

#include <cstddef>

namespace mcp_session {

// The store keeps sessions in two orders, least recently used first and
// oldest created first. Idle expiry is monotone in the first order and
// lifetime expiry in the second, so walking each from its head and
// stopping at the first live session finds every expired one while
// touching only those. `budget` bounds the work done under one lock hold.
//
// Order must provide: bool empty() const; session_times oldest() const;
// void remove_oldest();
template <typename Order>
std::size_t sweep_expired(Order& order, const expiry_policy& policy, unix_ms now, std::size_t budget)
{
    std::size_t removed = 0;
    while (removed < budget && !order.empty() && is_expired(order.oldest(), policy, now)) {
        order.remove_oldest();
        ++removed;
    }
    return removed;
}

// One sweep per zone per interval however many workers run a timer:
// whichever worker finds the zone's shared deadline passed claims it.
struct sweep_schedule {
    unix_ms interval_ms = default_sweep_interval_ms;

    bool due(unix_ms next_sweep_ms, unix_ms now) const { return now >= next_sweep_ms; }
    unix_ms next_after(unix_ms now) const { return now + interval_ms; }
};

}  // namespace mcp_session
