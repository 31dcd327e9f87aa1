#include "mcp_session/event.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(events)

BOOST_AUTO_TEST_CASE(kind_names_are_the_seed_names)
{
    BOOST_TEST(kind_name(event_kind::init) == "init");
    BOOST_TEST(kind_name(event_kind::message) == "message");
    BOOST_TEST(kind_name(event_kind::progress) == "progress");
    BOOST_TEST(kind_name(event_kind::lagged) == "lagged");
    BOOST_TEST(kind_name(event_kind::heartbeat) == "heartbeat");
}

BOOST_AUTO_TEST_CASE(publishers_choose_message_or_progress_only)
{
    BOOST_TEST((parse_published_kind("message") == event_kind::message));
    BOOST_TEST((parse_published_kind("progress") == event_kind::progress));
    BOOST_TEST(!parse_published_kind("init").has_value());
    BOOST_TEST(!parse_published_kind("heartbeat").has_value());
    BOOST_TEST(!parse_published_kind("Message").has_value());
    BOOST_TEST(!parse_published_kind("").has_value());
}

BOOST_AUTO_TEST_CASE(last_event_id_accepts_plain_decimals)
{
    BOOST_TEST(parse_last_event_id("0").value() == 0u);
    BOOST_TEST(parse_last_event_id("42").value() == 42u);
    BOOST_TEST(parse_last_event_id(" 7\t").value() == 7u);
    BOOST_TEST(parse_last_event_id("").value() == 0u);
    BOOST_TEST(parse_last_event_id("  ").value() == 0u);
    BOOST_TEST(parse_last_event_id("18446744073709551615").value() == 18446744073709551615ull);
}

BOOST_AUTO_TEST_CASE(last_event_id_rejects_everything_else)
{
    for (const char* bad : {"-1", "+1", "1.5", "0x10", "abc", "1 2", "18446744073709551616",
                            "99999999999999999999999", "1e3", "١"}) {
        BOOST_TEST(!parse_last_event_id(bad).has_value(), bad);
    }
}

BOOST_AUTO_TEST_CASE(sse_event_has_id_event_and_data_lines)
{
    std::string out;
    append_sse_event(out, 3, event_kind::message, R"({"jsonrpc":"2.0"})");
    BOOST_TEST(out == "id: 3\nevent: message\ndata: {\"jsonrpc\":\"2.0\"}\n\n");
}

BOOST_AUTO_TEST_CASE(line_breaks_in_data_cannot_end_the_event)
{
    std::string out;
    append_sse_event(out, 1, event_kind::progress, "a\nb\r\nc\rd\n\nevent: forged");
    BOOST_TEST(out == "id: 1\nevent: progress\ndata: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: event: forged\n\n");
}

BOOST_AUTO_TEST_CASE(events_append_to_one_buffer)
{
    std::string out;
    append_sse_event(out, 1, event_kind::init, "{}");
    append_sse_event(out, 2, event_kind::heartbeat, "{}");
    BOOST_TEST(out == "id: 1\nevent: init\ndata: {}\n\nid: 2\nevent: heartbeat\ndata: {}\n\n");
}

BOOST_AUTO_TEST_SUITE_END()
