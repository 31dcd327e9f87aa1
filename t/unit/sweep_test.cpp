#include "mcp_session/sweep.hpp"

#include <boost/test/unit_test.hpp>

#include <deque>

using namespace mcp_session;

namespace {

constexpr unix_ms start = 1700000000000;

// An order of sessions oldest first, as the shared-memory queues keep them.
struct fake_order {
    std::deque<session_times> sessions;
    bool empty() const { return sessions.empty(); }
    session_times oldest() const { return sessions.front(); }
    void remove_oldest() { sessions.pop_front(); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(sweep)

// seed: session_store_sweep_now_removes_expired
BOOST_AUTO_TEST_CASE(removes_only_expired_sessions)
{
    const expiry_policy policy{1000, 100000};
    fake_order by_access{{{start, start}, {start, start + 500}, {start, start + 2000}}};
    const unix_ms now = start + 1600;  // first two idle past 1 s, third fresh

    BOOST_TEST(sweep_expired(by_access, policy, now, 100) == 2u);
    BOOST_TEST_REQUIRE(by_access.sessions.size() == 1u);
    BOOST_TEST(by_access.sessions.front().last_access_ms == start + 2000);
}

BOOST_AUTO_TEST_CASE(stops_at_the_first_live_session)
{
    const expiry_policy policy{1000, 100000};
    // In the creation order a live session can precede an idle one; the
    // other order's walk finds that one, this walk must not skip ahead.
    fake_order by_creation{{{start, start + 5000}, {start + 1, start + 1}}};
    BOOST_TEST(sweep_expired(by_creation, policy, start + 3000, 100) == 0u);
    BOOST_TEST(by_creation.sessions.size() == 2u);
}

BOOST_AUTO_TEST_CASE(lifetime_expired_sessions_go_in_creation_order)
{
    const expiry_policy policy{100000, 1000};
    fake_order by_creation{{{start, start + 900}, {start + 100, start + 950}, {start + 5000, start + 5000}}};
    BOOST_TEST(sweep_expired(by_creation, policy, start + 1200, 100) == 2u);
    BOOST_TEST(by_creation.sessions.size() == 1u);
}

BOOST_AUTO_TEST_CASE(budget_bounds_the_work_per_call)
{
    const expiry_policy policy{1000, 100000};
    fake_order by_access;
    for (int i = 0; i < 10; ++i) {
        by_access.sessions.push_back({start, start});
    }
    BOOST_TEST(sweep_expired(by_access, policy, start + 5000, 4) == 4u);
    BOOST_TEST(sweep_expired(by_access, policy, start + 5000, 4) == 4u);
    BOOST_TEST(sweep_expired(by_access, policy, start + 5000, 4) == 2u);
    BOOST_TEST(by_access.empty());
}

BOOST_AUTO_TEST_CASE(schedule_claims_one_sweep_per_interval)
{
    const sweep_schedule schedule{60000};
    unix_ms next = 0;
    BOOST_TEST(schedule.due(next, start));
    next = schedule.next_after(start);
    BOOST_TEST(!schedule.due(next, start + 59999));  // a second worker's timer finds nothing to do
    BOOST_TEST(schedule.due(next, start + 60000));
}

BOOST_AUTO_TEST_CASE(horizon_spares_the_look_only_while_the_same_sessions_lead_before_their_deadline)
{
    int a = 0, b = 0, c = 0, d = 0;
    const expiry_horizon::heads leading{&a, &b, &c};
    expiry_horizon horizon;
    BOOST_TEST(!horizon.nothing_due(leading, start));  // nothing known yet
    horizon.remember(leading, start + 1000);
    BOOST_TEST(horizon.nothing_due(leading, start + 999));
    BOOST_TEST(!horizon.nothing_due(leading, start + 1000));  // the deadline's own millisecond
    BOOST_TEST(!horizon.nothing_due({&a, &d, &c}, start));    // another session leads one order
    BOOST_TEST(!horizon.nothing_due({&a, nullptr, &c}, start));  // an order emptied
    horizon.forget();
    BOOST_TEST(!horizon.nothing_due(leading, start));
}

BOOST_AUTO_TEST_SUITE_END()
