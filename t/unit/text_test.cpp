#include "mcp_session/text.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <utility>

using mcp_session::equals_ignoring_case;

namespace {

char fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }

}  // namespace

BOOST_AUTO_TEST_SUITE(text)

// Every pair of bytes, in short names (a byte at a time) and long ones
// (words, the last one overlapping), at places across the words:
// equal exactly when the byte-wise fold says so (bytes of 0x80 and up, and
// '@', '[', '`', '{' around the letters, are never folded).
BOOST_AUTO_TEST_CASE(case_folding_agrees_with_the_byte_wise_rule_for_every_byte_pair)
{
    int mismatches = 0;
    for (auto [length, place] : {std::pair{6u, 0u}, {6u, 5u}, {14u, 0u}, {14u, 5u}, {14u, 7u}, {14u, 8u}, {14u, 13u},
                                 {20u, 10u}}) {
        for (int a = 0; a < 256; ++a) {
            for (int b = 0; b < 256; ++b) {
                std::string x(length, 'm'), y(length, 'M');
                x[place] = static_cast<char>(a);
                y[place] = static_cast<char>(b);
                const bool expected = fold(static_cast<char>(a)) == fold(static_cast<char>(b));
                mismatches += equals_ignoring_case(x, y) != expected;
            }
        }
    }
    BOOST_TEST(mismatches == 0);
}

BOOST_AUTO_TEST_CASE(header_names_of_any_length_compare_by_letters_only)
{
    BOOST_TEST(equals_ignoring_case("", ""));
    BOOST_TEST(equals_ignoring_case("mcp-session-id", "MCP-Session-ID"));
    BOOST_TEST(equals_ignoring_case("Mcp-Protocol-Version", "mcp-protocol-version"));
    BOOST_TEST(!equals_ignoring_case("mcp-session-id", "mcp-session-ie"));
    BOOST_TEST(!equals_ignoring_case("mcp-protocol-versioN", "mcp-protocol-versio"));  // lengths differ
    BOOST_TEST(!equals_ignoring_case("mcp-protocol-version", "mcp-protocol-versioo"));  // last byte of a short tail
    BOOST_TEST(!equals_ignoring_case("origin", "origi\xce"));  // 'n' | 0x80
    BOOST_TEST(!equals_ignoring_case("content-length", "content_length"));
}

BOOST_AUTO_TEST_SUITE_END()
