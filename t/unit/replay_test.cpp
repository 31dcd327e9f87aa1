#include "mcp_session/replay.hpp"

#include <boost/test/unit_test.hpp>

#include <set>

using namespace mcp_session;

namespace {

ring_window after_publishing(std::uint64_t events, std::uint32_t capacity = 256)
{
    ring_window ring;
    ring.capacity = capacity;
    for (std::uint64_t i = 0; i < events; ++i) {
        ++ring.next_id;
    }
    return ring;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(replay)

// seed: session_state_publish_event_returns_monotonic_ids
BOOST_AUTO_TEST_CASE(ids_start_at_one_and_increase_by_one)
{
    ring_window ring;
    std::uint64_t ids[3];
    for (auto& id : ids) {
        id = ring.next_id++;
    }
    BOOST_TEST(ids[0] == 1u);
    BOOST_TEST(ids[1] == 2u);
    BOOST_TEST(ids[2] == 3u);
}

// seed: session_state_event_buffer_capacity_256
BOOST_AUTO_TEST_CASE(ring_keeps_the_newest_256_contiguous)
{
    const ring_window ring = after_publishing(300);
    BOOST_TEST(ring.retained() == 256u);
    BOOST_TEST(ring.oldest() == 45u);
    BOOST_TEST(ring.newest() == 300u);
    BOOST_TEST(ring.full());
    std::set<std::size_t> slots;
    for (std::uint64_t id = ring.oldest(); id <= ring.newest(); ++id) {
        slots.insert(ring.slot(id));
    }
    BOOST_TEST(slots.size() == 256u);  // every retained id has its own slot
    BOOST_TEST(ring.slot(300) == ring.slot(44));  // 300 overwrote 44
}

// seed: session_state_publish_event_no_subscribers_is_lossless_to_buffer
BOOST_AUTO_TEST_CASE(an_event_published_before_anyone_listens_is_replayed)
{
    const replay_plan plan = plan_replay(0, after_publishing(1));
    BOOST_TEST(plan.dropped == 0u);
    BOOST_TEST(plan.first_id == 1u);
    BOOST_TEST(plan.last_id == 1u);
}

BOOST_AUTO_TEST_CASE(replay_sends_everything_after_the_cursor)
{
    const replay_plan plan = plan_replay(7, after_publishing(10));
    BOOST_TEST(plan.dropped == 0u);
    BOOST_TEST(plan.first_id == 8u);
    BOOST_TEST(plan.last_id == 10u);
    BOOST_TEST(plan.count() == 3u);
}

BOOST_AUTO_TEST_CASE(an_up_to_date_cursor_replays_nothing)
{
    BOOST_TEST(!plan_replay(10, after_publishing(10)).has_events());
    BOOST_TEST(!plan_replay(0, after_publishing(0)).has_events());
}

BOOST_AUTO_TEST_CASE(a_cursor_older_than_the_ring_reports_what_was_dropped)
{
    const replay_plan plan = plan_replay(10, after_publishing(300));  // retained 45..300
    BOOST_TEST(plan.dropped == 34u);                                  // 11..44
    BOOST_TEST(plan.first_id == 45u);
    BOOST_TEST(plan.last_id == 300u);

    const replay_plan fresh = plan_replay(0, after_publishing(300));
    BOOST_TEST(fresh.dropped == 44u);
}

BOOST_AUTO_TEST_CASE(the_last_dropped_id_is_the_edge)
{
    BOOST_TEST(plan_replay(44, after_publishing(300)).dropped == 0u);
    BOOST_TEST(plan_replay(43, after_publishing(300)).dropped == 1u);
}

BOOST_AUTO_TEST_CASE(a_cursor_from_the_future_waits_for_new_events)
{
    const replay_plan plan = plan_replay(1000, after_publishing(5));
    BOOST_TEST(plan.dropped == 0u);
    BOOST_TEST(!plan.has_events());
    BOOST_TEST(plan.first_id == 6u);  // the next event published
}

BOOST_AUTO_TEST_CASE(small_rings_work_the_same)
{
    const ring_window ring = after_publishing(5, 2);
    BOOST_TEST(ring.oldest() == 4u);
    const replay_plan plan = plan_replay(1, ring);
    BOOST_TEST(plan.dropped == 2u);
    BOOST_TEST(plan.first_id == 4u);
}

// After a restart the ring is empty but ids go on from where they were:
// a client's missed events are announced as dropped, never invented.
BOOST_AUTO_TEST_CASE(restored_ring_counts_lost_ids_as_dropped)
{
    ring_window ring;
    ring.next_id = 11;
    ring.first_kept = 11;
    BOOST_TEST(ring.retained() == 0u);
    const replay_plan plan = plan_replay(7, ring);
    BOOST_TEST(plan.dropped == 3u);  // 8, 9, 10
    BOOST_TEST(!plan.has_events());
    BOOST_TEST(plan.first_id == 11u);
    BOOST_TEST(plan_replay(10, ring).dropped == 0u);

    ring.next_id = 14;  // three events published since the restart
    const replay_plan later = plan_replay(7, ring);
    BOOST_TEST(later.dropped == 3u);
    BOOST_TEST(later.first_id == 11u);
    BOOST_TEST(later.last_id == 13u);
    ring.next_id = 11 + 300;  // the ring wrapped: capacity rules again
    BOOST_TEST(ring.oldest() == 11u + 300 - 256);
}

// A ring given back after its stream closed held only markers (init,
// heartbeats): a client resuming from before them has lost nothing.
BOOST_AUTO_TEST_CASE(markers_of_a_given_back_ring_are_not_dropped_events)
{
    ring_window ring;
    ring.next_id = 11;
    ring.first_kept = 11;
    ring.quiet_below = 11;
    BOOST_TEST(plan_replay(3, ring).dropped == 0u);
    ring.next_id = 13;  // two events since
    const replay_plan plan = plan_replay(3, ring);
    BOOST_TEST(plan.dropped == 0u);
    BOOST_TEST(plan.first_id == 11u);
    BOOST_TEST(plan.last_id == 12u);
    ring.capacity = 4;
    ring.next_id = 21;  // 11..16 pushed out of a ring of 4: those are real losses
    BOOST_TEST(plan_replay(3, ring).dropped == 6u);
    BOOST_TEST(plan_replay(3, ring).first_id == 17u);
}

BOOST_AUTO_TEST_SUITE_END()
