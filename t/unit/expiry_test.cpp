#include "mcp_session/expiry.hpp"

#include <boost/test/unit_test.hpp>

using namespace mcp_session;

namespace {

constexpr unix_ms minute = 60 * 1000;
constexpr unix_ms start = 1700000000000;

session_times fresh() { return {start, start}; }

}  // namespace

BOOST_AUTO_TEST_SUITE(expiry)

BOOST_AUTO_TEST_CASE(defaults_are_thirty_minutes_idle_and_four_hours_total)
{
    const expiry_policy policy;
    BOOST_TEST(policy.idle_timeout_ms == 30 * minute);
    BOOST_TEST(policy.max_lifetime_ms == 240 * minute);
}

// seed: session_store_get_returns_state_when_present
BOOST_AUTO_TEST_CASE(fresh_session_is_live)
{
    BOOST_TEST((classify(fresh(), expiry_policy{}, start) == session_state::live));
    BOOST_TEST((classify(fresh(), expiry_policy{}, start + 29 * minute) == session_state::live));
}

// seed: session_store_get_returns_none_when_expired_by_inactivity
BOOST_AUTO_TEST_CASE(idle_timeout_expires_at_the_deadline)
{
    const expiry_policy policy;
    BOOST_TEST((classify(fresh(), policy, start + 30 * minute - 1) == session_state::live));
    BOOST_TEST((classify(fresh(), policy, start + 30 * minute) == session_state::expired_idle));
    BOOST_TEST(is_expired(fresh(), policy, start + 31 * minute));
}

// seed: session_store_get_returns_none_when_expired_by_absolute_ttl
BOOST_AUTO_TEST_CASE(lifetime_expires_even_a_busy_session)
{
    const expiry_policy policy;
    const session_times busy{start, start + 240 * minute - 1};
    BOOST_TEST((classify(busy, policy, start + 240 * minute - 1) == session_state::live));
    BOOST_TEST((classify(busy, policy, start + 240 * minute) == session_state::expired_lifetime));
}

// seed: session_store_get_refreshes_last_accessed_on_hit
BOOST_AUTO_TEST_CASE(touch_refreshes_idle_but_not_lifetime)
{
    const expiry_policy policy;
    session_times times = fresh();
    for (int step = 1; step <= 7; ++step) {
        times = touched(times, start + step * 25 * minute);
        BOOST_TEST(!is_expired(times, policy, start + step * 25 * minute + 29 * minute));
    }
    BOOST_TEST(times.created_ms == start);
    BOOST_TEST((classify(touched(times, start + 240 * minute), policy, start + 240 * minute) ==
                session_state::expired_lifetime));
}

BOOST_AUTO_TEST_CASE(touch_never_moves_the_clock_backwards)
{
    const session_times later{start, start + 5000};
    BOOST_TEST(touched(later, start + 4990).last_access_ms == start + 5000);
}

BOOST_AUTO_TEST_CASE(huge_timeouts_do_not_overflow)
{
    const expiry_policy forever{INT64_MAX, INT64_MAX};
    BOOST_TEST(!is_expired(fresh(), forever, INT64_MAX - 1));
}

BOOST_AUTO_TEST_CASE(sub_second_timeouts_work)
{
    const expiry_policy quick{300, 1000};
    BOOST_TEST(!is_expired(fresh(), quick, start + 299));
    BOOST_TEST(is_expired(fresh(), quick, start + 300));
}

BOOST_AUTO_TEST_CASE(expires_at_is_the_earlier_deadline_and_agrees_with_classify)
{
    const expiry_policy policy{10 * minute, 60 * minute};
    BOOST_TEST(expires_at(fresh(), policy) == start + 10 * minute);
    const session_times busy{start, start + 55 * minute};
    BOOST_TEST(expires_at(busy, policy) == start + 60 * minute);
    for (const session_times& t : {fresh(), busy}) {
        BOOST_TEST(!is_expired(t, policy, expires_at(t, policy) - 1));
        BOOST_TEST(is_expired(t, policy, expires_at(t, policy)));
    }
    const expiry_policy forever{INT64_MAX, INT64_MAX};
    BOOST_TEST(expires_at(fresh(), forever) == INT64_MAX);
}

BOOST_AUTO_TEST_SUITE_END()

// The hot path skips the write of a touch while the idle clock is fresh.
BOOST_AUTO_TEST_CASE(touch_is_due_once_the_clock_is_a_second_stale)
{
    const expiry_policy policy;  // 30 min idle: the granularity is 1 s
    const session_times times{start, start + 10};
    BOOST_TEST(!touch_is_due(times, policy, start + 10));
    BOOST_TEST(!touch_is_due(times, policy, start + 1009));
    BOOST_TEST(touch_is_due(times, policy, start + 1010));
    BOOST_TEST(!touch_is_due(times, policy, start + 5));  // a worker whose clock lags
}

BOOST_AUTO_TEST_CASE(short_idle_timeouts_get_a_finer_touch)
{
    const expiry_policy short_idle{1600, default_max_lifetime_ms};
    BOOST_TEST(touch_granularity_ms(short_idle) == 100);
    BOOST_TEST(touch_is_due(session_times{start, start}, short_idle, start + 100));
    // The idle clock lags by less than the granularity, so a session used
    // within its timeout still outlives the timeout minus that lag.
    const session_times skipped{start, start};
    BOOST_TEST(!touch_is_due(skipped, short_idle, start + 99));
    BOOST_TEST(!is_expired(skipped, short_idle, start + 1599));
    const expiry_policy tiny{1, default_max_lifetime_ms};
    BOOST_TEST(touch_granularity_ms(tiny) == 0);
    BOOST_TEST(touch_is_due(session_times{start, start}, tiny, start));
}
