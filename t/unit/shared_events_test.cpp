#include "mcp_session/shared_events.hpp"
#include "mcp_session/shared_record.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace mcp_session;

namespace {

session_key key_of(const std::string& id) { return *session_key::from_id(id); }

// What the numbering script makes of a body: "E<id> " in front.
std::string numbered(std::uint64_t id, const shared_event& e) { return "E" + std::to_string(id) + " " + encode_shared_event_body(e); }

}  // namespace

BOOST_AUTO_TEST_SUITE(shared_events)

BOOST_AUTO_TEST_CASE(keys_share_the_session_hash_tag)
{
    const session_key key = key_of("6f1e8a52-1c1b-4bb5-9f5e-0e1d2c3b4a59");
    const std::string token = shared_token(key);
    BOOST_TEST(shared_events_key("mcp:", key) == "mcp:e:{" + token + "}");
    BOOST_TEST(shared_events_channel("mcp:", key) == "mcp:ev:{" + token + "}");
    BOOST_TEST(shared_listener_key("mcp:", key) == "mcp:l:{" + token + "}");
    const auto back = key_of_events_channel("mcp:", shared_events_channel("mcp:", key));
    BOOST_REQUIRE(back.has_value());
    BOOST_TEST(shared_token(*back) == token);
    BOOST_TEST(!key_of_events_channel("other:", shared_events_channel("mcp:", key)).has_value());
    BOOST_TEST(!key_of_events_channel("mcp:", "mcp:ev:{zz}").has_value());
    BOOST_TEST(!key_of_events_channel("mcp:", "mcp:ev:{").has_value());
}

BOOST_AUTO_TEST_CASE(a_standalone_event_round_trips_with_its_bytes)
{
    shared_event e;
    e.kind = event_kind::progress;
    e.payload = std::string_view("{\"a\":\"line\nbreak\"}\0tail", 24);
    const std::string text = numbered(42, e);
    const shared_message m = decode_shared_message(text);
    BOOST_REQUIRE(m.what == shared_message::type::event);
    BOOST_TEST(m.event.id == 42U);
    BOOST_TEST(static_cast<int>(m.event.kind) == static_cast<int>(event_kind::progress));
    BOOST_TEST(m.event.post_stream == 0U);
    BOOST_TEST(m.event.payload == e.payload);
}

BOOST_AUTO_TEST_CASE(post_stream_events_and_markers_round_trip)
{
    shared_event e;
    e.post_stream = 0x100000007ULL;
    e.post_index = 3;
    e.flags = shared_flag_framed | shared_flag_response;
    e.payload = "data: {}";
    shared_message m = decode_shared_message(numbered(9, e));
    BOOST_REQUIRE(m.what == shared_message::type::event);
    BOOST_TEST(m.event.post_stream == 0x100000007ULL);
    BOOST_TEST(m.event.post_index == 3U);
    BOOST_TEST(m.event.flags == (shared_flag_framed | shared_flag_response));

    shared_event closed;
    closed.kind = event_kind::init;
    closed.post_stream = 5;
    closed.post_index = 4;
    closed.flags = shared_flag_closed;
    m = decode_shared_message(numbered(10, closed));
    BOOST_REQUIRE(m.what == shared_message::type::event);
    BOOST_TEST(m.event.flags == shared_flag_closed);
}

BOOST_AUTO_TEST_CASE(listener_messages)
{
    const shared_message m = decode_shared_message("Lab12cd:7");
    BOOST_REQUIRE(m.what == shared_message::type::listener);
    BOOST_TEST(m.listener == "ab12cd:7");
    BOOST_TEST((decode_shared_message("L").what == shared_message::type::malformed));
    BOOST_TEST((decode_shared_message("La b").what == shared_message::type::malformed));
    BOOST_TEST((decode_shared_message("L" + std::string(65, 'x')).what == shared_message::type::malformed));
}

BOOST_AUTO_TEST_CASE(hostile_messages_are_malformed)
{
    for (const std::string text : {"", "X", "E", "E0 1 0 0 0\n{}", "E1 1 0 0 0", "E1 9 0 0 0\n{}", "E-1 1 0 0 0\n{}",
                                   "E01 1 0 0 0\n{}", "E1 1 0 0 8\n{}", "E1 1 5 1 0\n{}", "E1 1 0 0 1\n{}",
                                   "E1 0 0 0 4\n", "E1 0 5 0 4\nx", "E1 1 0 0 2\n{}", "E1 1 5 1 2\n{}",
                                   "E99999999999999999999 1 0 0 0\n{}", "E1  1 0 0 0\n{}", "E1 4 0 0 0\n{}", "E1 256 0 0 0\n{}", "E1 72704 72 7 4\n"}) {
        BOOST_TEST_CONTEXT(text) { BOOST_TEST((decode_shared_message(text).what == shared_message::type::malformed)); }
    }
}

BOOST_AUTO_TEST_CASE(entry_ids)
{
    BOOST_TEST(shared_entry_id("0-17") == 17U);
    BOOST_TEST(shared_entry_id("1700000000000-0") == 0U);
    BOOST_TEST(shared_entry_id("0-") == 0U);
    BOOST_TEST(shared_entry_id("0-01") == 0U);
    BOOST_TEST(shared_entry_id("0-1x") == 0U);
}

BOOST_AUTO_TEST_SUITE_END()
