// The periodic sweep: which sessions it removes and when it runs.
#pragma once

#include "mcp_session/expiry.hpp"

#include <array>
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

// What a sweep of the three orders (unused, by last access, by creation)
// left first in line, and the first millisecond one of those sessions
// expires. While the same three lead and that millisecond has not come, a
// sweep would remove nothing: a head's times only move later (a touch),
// and a head that is touched away, removed or joined by an older one in
// front is no longer the same head. So the sweep a session's creation
// runs first costs one comparison instead of three looks.
class expiry_horizon {
public:
    using heads = std::array<const void*, 3>;  // null: that order is empty

    bool nothing_due(const heads& leading, unix_ms now) const
    {
        return known_ && leading == leading_ && now < earliest_;
    }
    void remember(const heads& leading, unix_ms earliest)
    {
        leading_ = leading;
        earliest_ = earliest;
        known_ = true;
    }
    void forget() { known_ = false; }

private:
    heads leading_{};
    unix_ms earliest_ = 0;
    bool known_ = false;
};

// One sweep per zone per interval however many workers run a timer:
// whichever worker finds the zone's shared deadline passed claims it.
struct sweep_schedule {
    unix_ms interval_ms = default_sweep_interval_ms;

    bool due(unix_ms next_sweep_ms, unix_ms now) const { return now >= next_sweep_ms; }
    unix_ms next_after(unix_ms now) const { return now + interval_ms; }
};

}  // namespace mcp_session
