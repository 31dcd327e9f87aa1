#include "mcp_session/room.hpp"

#include <boost/test/unit_test.hpp>

using mcp_session::room_policy_for;
using mcp_session::room_purpose;

BOOST_AUTO_TEST_SUITE(room)

BOOST_AUTO_TEST_CASE(an_event_never_evicts_a_live_session)
{
    constexpr auto p = room_policy_for(room_purpose::event);
    BOOST_TEST(p.evict_unused == 0u);
    BOOST_TEST(p.evict_established == 0u);
    BOOST_TEST(p.drop_own_events);
    BOOST_TEST(p.expire > 0u);
}

BOOST_AUTO_TEST_CASE(a_new_session_evicts_a_bounded_few)
{
    constexpr auto p = room_policy_for(room_purpose::session);
    BOOST_TEST(p.evict_unused > 0u);
    BOOST_TEST(p.evict_unused + p.evict_established <= 16u);
    BOOST_TEST(!p.drop_own_events);
}

BOOST_AUTO_TEST_CASE(a_stream_evicts_only_unused_sessions_and_a_bounded_number)
{
    constexpr auto p = room_policy_for(room_purpose::stream);
    BOOST_TEST(p.evict_established == 0u);
    BOOST_TEST(p.evict_unused > 0u);
    BOOST_TEST(p.evict_unused <= 64u);
}

BOOST_AUTO_TEST_CASE(only_the_init_marker_is_part_of_opening_a_stream)
{
    using mcp_session::event_kind;
    BOOST_TEST((mcp_session::room_purpose_of(event_kind::init) == room_purpose::stream));
    BOOST_TEST((mcp_session::room_purpose_of(event_kind::message) == room_purpose::event));
    BOOST_TEST((mcp_session::room_purpose_of(event_kind::progress) == room_purpose::event));
    BOOST_TEST((mcp_session::room_purpose_of(event_kind::heartbeat) == room_purpose::event));
}

BOOST_AUTO_TEST_SUITE_END()
