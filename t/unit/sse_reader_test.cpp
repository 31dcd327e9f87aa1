#include "mcp_session/sse_reader.hpp"

#include <boost/test/unit_test.hpp>

#include <random>
#include <string>
#include <vector>

using namespace mcp_session;

namespace {

std::vector<std::string> read_all(sse_reader& reader, std::string_view input, std::size_t piece = 0)
{
    std::vector<std::string> messages;
    if (piece == 0) {
        reader.feed(input, messages);
        return messages;
    }
    for (std::size_t at = 0; at < input.size(); at += piece) {
        reader.feed(input.substr(at, piece), messages);
    }
    return messages;
}

const std::string two_events =
    "\xEF\xBB\xBF: heartbeat\r\n"
    "id: a-1\r\n"
    "event: message\r\n"
    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\r\n"
    "\r\n"
    "retry: 2500\r"
    "id: a-2\r"
    "data:first\r"
    "data: second\r"
    "\r";

}  // namespace

BOOST_AUTO_TEST_SUITE(sse_reader_suite)

BOOST_AUTO_TEST_CASE(reads_messages_ids_and_retry_with_any_line_end)
{
    sse_reader reader(1024);
    const auto messages = read_all(reader, two_events);
    BOOST_REQUIRE_EQUAL(messages.size(), 2u);
    BOOST_CHECK_EQUAL(messages[0], "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}");
    BOOST_CHECK_EQUAL(messages[1], "first\nsecond");
    BOOST_CHECK_EQUAL(reader.last_event_id(), "a-2");
    BOOST_REQUIRE(reader.retry_ms().has_value());
    BOOST_CHECK_EQUAL(*reader.retry_ms(), 2500u);
}

BOOST_AUTO_TEST_CASE(the_same_events_whatever_the_splits)
{
    for (std::size_t piece = 1; piece <= two_events.size(); ++piece) {
        sse_reader reader(1024);
        const auto messages = read_all(reader, two_events, piece);
        BOOST_REQUIRE_EQUAL(messages.size(), 2u);
        BOOST_CHECK_EQUAL(messages[1], "first\nsecond");
        BOOST_CHECK_EQUAL(reader.last_event_id(), "a-2");
    }
    // LF LF split between the CR and the LF of a CRLF ends one line only.
    sse_reader reader(1024);
    std::vector<std::string> messages;
    reader.feed("data: x\r", messages);
    reader.feed("\n", messages);
    BOOST_CHECK(messages.empty());
    reader.feed("\r\n", messages);
    BOOST_REQUIRE_EQUAL(messages.size(), 1u);
    BOOST_CHECK_EQUAL(messages[0], "x");
}

BOOST_AUTO_TEST_CASE(priming_events_other_types_and_incomplete_events_are_no_messages)
{
    sse_reader reader(1024);
    const auto messages = read_all(reader,
                                   "id: 0\ndata:\n\n"           // priming
                                   "event: ping\ndata: {}\n\n"  // another type
                                   "id: 9\n\n"                  // no data
                                   "data: {\"a\":1}\n");        // not ended
    BOOST_CHECK(messages.empty());
    BOOST_CHECK_EQUAL(reader.skipped(), 1u);
    BOOST_CHECK_EQUAL(reader.last_event_id(), "9");
    BOOST_CHECK(!reader.retry_ms().has_value());
}

BOOST_AUTO_TEST_CASE(invalid_retry_and_ids_with_nul_are_ignored)
{
    sse_reader reader(1024);
    static const char input[] = "retry: 10\nretry: 1x\nretry:\nid: ok\nid: b\0d\ndata: m\n\n";
    read_all(reader, std::string(input, sizeof(input) - 1));
    BOOST_REQUIRE(reader.retry_ms().has_value());
    BOOST_CHECK_EQUAL(*reader.retry_ms(), 10u);
    BOOST_CHECK_EQUAL(reader.last_event_id(), "ok");
}

BOOST_AUTO_TEST_CASE(oversized_events_are_dropped_and_the_stream_goes_on)
{
    sse_reader reader(64);
    const std::string big(200, 'x');
    // One long line, and many short data lines adding up past the limit.
    std::string input = "data: " + big + "\n\n";
    for (int i = 0; i < 10; ++i) {
        input += "data: 0123456789\n";
    }
    input += "\ndata: small\n\n";
    for (std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
        sse_reader r(64);
        const auto messages = read_all(r, input, piece);
        BOOST_REQUIRE_EQUAL(messages.size(), 1u);
        BOOST_CHECK_EQUAL(messages[0], "small");
        BOOST_CHECK_EQUAL(r.oversized(), 2u);
    }
}

BOOST_AUTO_TEST_CASE(a_line_that_never_ends_holds_bounded_memory)
{
    sse_reader reader(64);
    std::vector<std::string> messages;
    std::mt19937 random(7);
    for (int i = 0; i < 10000; ++i) {
        reader.feed(std::string(1 + random() % 50, 'y'), messages);
        BOOST_REQUIRE_LE(reader.held(), 64u + 1024u);
    }
    reader.feed("\n\ndata: after\n\n", messages);
    BOOST_REQUIRE_EQUAL(messages.size(), 1u);
    BOOST_CHECK_EQUAL(messages[0], "after");
}

BOOST_AUTO_TEST_SUITE_END()
