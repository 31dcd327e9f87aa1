#include "mcp_session/session_id.hpp"

#include <boost/test/unit_test.hpp>

#include <set>
#include <string>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(session_id)

// seed: session_store_insert_returns_unique_id
BOOST_AUTO_TEST_CASE(generated_ids_are_unique)
{
    session_id_generator generator;
    std::set<std::string> seen;
    for (int i = 0; i < 10000; ++i) {
        BOOST_TEST_REQUIRE(seen.insert(generator.next(1700000000000)).second);
    }
}

BOOST_AUTO_TEST_CASE(v7_layout_carries_timestamp_version_and_variant)
{
    random_bits ones{};
    ones.fill(0xFF);
    const std::string id = make_session_id_v7(0x0190A1B2C3D4, ones);
    BOOST_TEST(id == "0190a1b2-c3d4-7fff-bfff-ffffffffffff");

    random_bits zeros{};
    BOOST_TEST(make_session_id_v7(0, zeros) == "00000000-0000-7000-8000-000000000000");
}

BOOST_AUTO_TEST_CASE(later_milliseconds_sort_later)
{
    session_id_generator generator;
    const std::string earlier = generator.next(1700000000000);
    const std::string later = generator.next(1700000000001);
    BOOST_TEST(earlier.substr(0, 13) < later.substr(0, 13));
}

BOOST_AUTO_TEST_CASE(generated_ids_are_storable)
{
    session_id_generator generator;
    BOOST_TEST(is_storable_session_id(generator.next(1700000000000)));
}

// seed: session_id_parse_rejects_empty_string
BOOST_AUTO_TEST_CASE(empty_and_whitespace_headers_name_no_session)
{
    BOOST_TEST(!parse_session_header("").has_value());
    BOOST_TEST(!parse_session_header(" ").has_value());
    BOOST_TEST(!parse_session_header(" \t  ").has_value());
}

// seed: session_id_round_trips_through_string
BOOST_AUTO_TEST_CASE(header_value_round_trips_with_whitespace_trimmed)
{
    const std::string id = "0190a1b2-c3d4-7fff-bfff-ffffffffffff";
    BOOST_TEST(parse_session_header(id).value() == id);
    BOOST_TEST(parse_session_header(" \t" + id + " ").value() == id);
    BOOST_TEST(parse_session_header("a b").value() == "a b");
}

BOOST_AUTO_TEST_CASE(storable_ids_are_visible_ascii_up_to_the_bound)
{
    BOOST_TEST(is_storable_session_id("a"));
    BOOST_TEST(is_storable_session_id("!~"));
    BOOST_TEST(is_storable_session_id(std::string(max_session_id_length, 'x')));
    BOOST_TEST(!is_storable_session_id(std::string(max_session_id_length + 1, 'x')));
    BOOST_TEST(!is_storable_session_id(""));
    BOOST_TEST(!is_storable_session_id("a b"));
    BOOST_TEST(!is_storable_session_id("tab\there"));
    BOOST_TEST(!is_storable_session_id(std::string("nul\0byte", 8)));
    BOOST_TEST(!is_storable_session_id("caf\xc3\xa9"));
    BOOST_TEST(!is_storable_session_id("del\x7f"));
}

BOOST_AUTO_TEST_SUITE_END()
