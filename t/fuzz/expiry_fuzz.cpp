// Expiry decisions with a fuzzed clock: classify, the deadline, touching,
// and the bounded sweep over an LRU-ordered list.
#include "fuzz_check.hpp"
#include "mcp_session/expiry.hpp"
#include "mcp_session/sweep.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>

using namespace mcp_session;

namespace {

constexpr unix_ms ms_max = std::numeric_limits<unix_ms>::max();

unix_ms clamped(__int128 value)
{
    return static_cast<unix_ms>(std::clamp<__int128>(value, 0, ms_max));
}

// Times near "now" mostly, so deadlines are reached as often as not.
unix_ms some_time(FuzzedDataProvider& input, unix_ms base)
{
    switch (input.ConsumeIntegralInRange(0, 2)) {
    case 0:
        return clamped(static_cast<__int128>(base) + input.ConsumeIntegralInRange<unix_ms>(-100000, 100000));
    case 1:
        return input.ConsumeIntegralInRange<unix_ms>(0, ms_max);
    default:
        return input.ConsumeBool() ? 0 : ms_max - input.ConsumeIntegralInRange<unix_ms>(0, 1000);
    }
}

struct lru_order {
    std::deque<session_times> sessions;
    bool empty() const { return sessions.empty(); }
    session_times oldest() const { return sessions.front(); }
    void remove_oldest() { sessions.pop_front(); }
};

void check_times(const session_times& times, const expiry_policy& policy, unix_ms now, unix_ms later)
{
    const session_state state = classify(times, policy, now);
    const unix_ms deadline = expires_at(times, policy);
    FUZZ_CHECK((state == session_state::live) == (now < deadline));
    FUZZ_CHECK(is_expired(times, policy, now) == (state != session_state::live));
    // A lifetime that would end past the clock's range ends at its last value.
    const bool past_lifetime = times.created_ms > ms_max - policy.max_lifetime_ms
                                   ? now == ms_max
                                   : now >= times.created_ms + policy.max_lifetime_ms;
    FUZZ_CHECK((state == session_state::expired_lifetime) == past_lifetime);
    FUZZ_CHECK(classify(times, policy, deadline) != session_state::live);
    // Once expired, a session stays expired.
    if (state != session_state::live && later >= now) {
        FUZZ_CHECK(is_expired(times, policy, later));
    }
    // A touch never moves the idle clock back, never touches the creation
    // time, and leaves a session that is not idle at that instant.
    const session_times after = touched(times, now);
    FUZZ_CHECK(after.created_ms == times.created_ms);
    FUZZ_CHECK(after.last_access_ms == std::max(times.last_access_ms, now));
    FUZZ_CHECK(expires_at(after, policy) >= deadline);
    FUZZ_CHECK(now == ms_max || classify(after, policy, now) != session_state::expired_idle);
}

void check_sweep(FuzzedDataProvider& input, const expiry_policy& policy, unix_ms now)
{
    lru_order order;
    unix_ms access = some_time(input, now - policy.idle_timeout_ms);
    const int count = input.ConsumeIntegralInRange(0, 32);
    for (int i = 0; i < count; ++i) {
        const unix_ms created = std::max<unix_ms>(0, access - input.ConsumeIntegralInRange<unix_ms>(0, 1000));
        order.sessions.push_back({created, access});
        access = std::min(ms_max - 1000, access) + input.ConsumeIntegralInRange<unix_ms>(0, 1000);
    }
    const std::size_t budget = input.ConsumeIntegralInRange<std::size_t>(0, 40);
    const lru_order before = order;
    const std::size_t removed = sweep_expired(order, policy, now, budget);
    FUZZ_CHECK(removed <= budget);
    FUZZ_CHECK(removed + order.sessions.size() == before.sessions.size());
    for (std::size_t i = 0; i < removed; ++i) {
        FUZZ_CHECK(is_expired(before.sessions[i], policy, now));
    }
    if (removed < budget && !order.empty()) {
        FUZZ_CHECK(!is_expired(order.oldest(), policy, now));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider input(bytes, size);
    expiry_policy policy;
    // nginx accepts only positive durations for both.
    policy.idle_timeout_ms = input.ConsumeIntegralInRange<unix_ms>(1, input.ConsumeBool() ? 10000000 : ms_max);
    policy.max_lifetime_ms = input.ConsumeIntegralInRange<unix_ms>(1, input.ConsumeBool() ? 100000000 : ms_max);
    const unix_ms now = input.ConsumeIntegralInRange<unix_ms>(0, ms_max);
    session_times times;
    times.created_ms = some_time(input, now - policy.max_lifetime_ms);
    times.last_access_ms = std::max(times.created_ms, some_time(input, now - policy.idle_timeout_ms));
    const unix_ms later = some_time(input, now);
    check_times(times, policy, now, later);
    check_sweep(input, policy, now);
    return 0;
}
