// When a session stops being valid. Every decision takes `now` as an
// argument so it can be tested with a fake clock.
#pragma once

#include <cstdint>

namespace mcp_session {

using unix_ms = std::int64_t;

inline constexpr unix_ms default_idle_timeout_ms = 30 * 60 * 1000;     // 30 min
inline constexpr unix_ms default_max_lifetime_ms = 4 * 60 * 60 * 1000;  // 4 h
inline constexpr unix_ms default_sweep_interval_ms = 60 * 1000;

struct expiry_policy {
    unix_ms idle_timeout_ms = default_idle_timeout_ms;
    unix_ms max_lifetime_ms = default_max_lifetime_ms;
};

struct session_times {
    unix_ms created_ms = 0;
    unix_ms last_access_ms = 0;
};

enum class session_state { live, expired_idle, expired_lifetime };

// A deadline is reached at the exact millisecond it names.
session_state classify(const session_times& times, const expiry_policy& policy, unix_ms now);

inline bool is_expired(const session_times& times, const expiry_policy& policy, unix_ms now)
{
    return classify(times, policy, now) != session_state::live;
}

// The first millisecond at which the session is expired, unless it is
// touched before then.
unix_ms expires_at(const session_times& times, const expiry_policy& policy);

// A successful lookup refreshes the idle clock only; the lifetime keeps
// counting from creation. The clock never moves backwards for a session
// even if two workers' cached times differ by a few milliseconds.
session_times touched(const session_times& times, unix_ms now);

// A touch is worth its write (the record and its place in the LRU queue,
// under the zone lock) only once the idle clock is this stale: at most
// 1 s, and a sixteenth of a shorter idle timeout. So a session's idle
// clock, and the LRU order, lag its real last use by less than that.
unix_ms touch_granularity_ms(const expiry_policy& policy);

bool touch_is_due(const session_times& times, const expiry_policy& policy, unix_ms now);

}  // namespace mcp_session
