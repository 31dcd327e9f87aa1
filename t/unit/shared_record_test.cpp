#include "mcp_session/shared_record.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using namespace mcp_session;

namespace {

session_key key_of(const std::string& id) { return *session_key::from_id(id); }

std::vector<std::string_view> flat(const std::vector<std::pair<std::string, std::string>>& pairs)
{
    std::vector<std::string_view> out;
    for (const auto& [name, value] : pairs) {
        out.push_back(name);
        out.push_back(value);
    }
    return out;
}

shared_session sample()
{
    shared_session s;
    s.created_ms = 1700000000000;
    s.last_access_ms = 1700000004321;
    s.bound = 3;
    s.principal = 0x0123456789abcdefULL;
    s.tenant = 0xfedcba9876543210ULL;
    s.backend_id = "backend-7";
    s.pinned_server = "127.0.0.1:8081";
    return s;
}

// The encoded record with one field's value replaced.
std::vector<std::pair<std::string, std::string>> with_field(const std::string& name, const std::string& value)
{
    auto pairs = encode_shared_session(sample());
    for (auto& [n, v] : pairs) {
        if (n == name) {
            v = value;
        }
    }
    return pairs;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(shared_record_suite)

BOOST_AUTO_TEST_CASE(tokens_round_trip_every_id_shape)
{
    for (const std::string& id : std::vector<std::string>{"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "0123456789abcdef0123456789abcdef",
                                 "Opaque.Id-1", std::string(300, 'x')}) {
        const session_key key = key_of(id);
        const std::string token = shared_token(key);
        const auto back = key_from_shared_token(token);
        BOOST_TEST_REQUIRE(back.has_value(), id.substr(0, 40));
        BOOST_TEST(back->equals(key.data(), key.size(), key.form()));
        BOOST_TEST(token.find_first_not_of("0123456789abcdef") == std::string::npos);
    }
    BOOST_TEST(shared_token(key_of("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")) == "10190a1b2c3d47e5f8a9b0c1d2e3f4a5b");
}

BOOST_AUTO_TEST_CASE(foreign_tokens_are_refused)
{
    for (const std::string& bad : std::vector<std::string>{"", "1", "10", "1ZZ", "10190A1B2C3D47E5F8A9B0C1D2E3F4A5B", "9abcd", "1abc",
                                  "0" + std::string(2 * 129, 'a'), "3" + std::string(62, 'a') /* digest too short */,
                                  "02020" /* verbatim id holding a space */}) {
        BOOST_TEST(!key_from_shared_token(bad).has_value(), bad.substr(0, 20));
    }
}

BOOST_AUTO_TEST_CASE(key_names_carry_the_token_as_hash_tag)
{
    const session_key key = key_of("abc");
    BOOST_TEST(shared_session_key("mcp:", key) == "mcp:s:{0616263}");
    BOOST_TEST(shared_tombstone_key("mcp:", key) == "mcp:s:{0616263}:gone");
    BOOST_TEST(shared_end_channel("mcp:") == "mcp:ended");
    BOOST_TEST(shared_binding_key_name("x/") == "x/binding_key");
}

BOOST_AUTO_TEST_CASE(prefixes_without_braces_or_spaces)
{
    BOOST_TEST(is_valid_shared_prefix("mcp:"));
    BOOST_TEST(is_valid_shared_prefix(""));
    BOOST_TEST(!is_valid_shared_prefix("a{b"));
    BOOST_TEST(!is_valid_shared_prefix("a}"));
    BOOST_TEST(!is_valid_shared_prefix("a b"));
    BOOST_TEST(!is_valid_shared_prefix("a\"b"));
    BOOST_TEST(!is_valid_shared_prefix(std::string(65, 'a')));
}

BOOST_AUTO_TEST_CASE(records_round_trip)
{
    const auto encoded = encode_shared_session(sample());
    const shared_decoding d = decode_shared_session(flat(encoded));
    BOOST_TEST_REQUIRE(static_cast<int>(d.result) == static_cast<int>(shared_decoding::verdict::valid));
    BOOST_TEST(d.session.created_ms == sample().created_ms);
    BOOST_TEST(d.session.last_access_ms == sample().last_access_ms);
    BOOST_TEST(d.session.bound == 3);
    BOOST_TEST(d.session.principal == sample().principal);
    BOOST_TEST(d.session.tenant == sample().tenant);
    BOOST_TEST(d.session.backend_id == "backend-7");
    BOOST_TEST(d.session.pinned_server == "127.0.0.1:8081");

    shared_session bare;
    bare.created_ms = bare.last_access_ms = 5;
    const shared_decoding e = decode_shared_session(flat(encode_shared_session(bare)));
    BOOST_TEST_REQUIRE(static_cast<int>(e.result) == static_cast<int>(shared_decoding::verdict::valid));
    BOOST_TEST(e.session.backend_id.empty());
    BOOST_TEST(e.session.bound == 0);
}

BOOST_AUTO_TEST_CASE(an_empty_reply_is_an_absent_session)
{
    BOOST_TEST(static_cast<int>(decode_shared_session({}).result) ==
               static_cast<int>(shared_decoding::verdict::absent));
}

BOOST_AUTO_TEST_CASE(unknown_fields_are_skipped)
{
    auto pairs = encode_shared_session(sample());
    pairs.emplace_back("future", "anything");
    pairs.emplace_back("z", "1");
    BOOST_TEST(static_cast<int>(decode_shared_session(flat(pairs)).result) ==
               static_cast<int>(shared_decoding::verdict::valid));
}

BOOST_AUTO_TEST_CASE(hostile_records_are_malformed)
{
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"v", "2"},          {"c", "-1"},          {"c", "01"},           {"c", "1e9"},
        {"c", ""},           {"a", "9999999999999999"}, {"a", "1699999999999" /* before c */},
        {"b", "4"},          {"b", "11"},          {"p", "0123"},         {"t", "0123456789ABCDEF"},
        {"i", std::string(129, 'i')}, {"i", "with space"}, {"i", std::string("nul\0", 4)},
        {"s", std::string(120, 's')}, {"s", "a\r\nb"},
    };
    for (const auto& [name, value] : cases) {
        const shared_decoding d = decode_shared_session(flat(with_field(name, value)));
        BOOST_TEST(static_cast<int>(d.result) == static_cast<int>(shared_decoding::verdict::malformed),
                   name << "=" << value.substr(0, 20));
        BOOST_TEST(!d.problem.empty());
    }
    auto truncated = encode_shared_session(sample());
    truncated.pop_back();
    BOOST_TEST(static_cast<int>(decode_shared_session(flat(truncated)).result) ==
               static_cast<int>(shared_decoding::verdict::malformed));
    auto doubled = encode_shared_session(sample());
    doubled.push_back(doubled.front());
    BOOST_TEST(static_cast<int>(decode_shared_session(flat(doubled)).result) ==
               static_cast<int>(shared_decoding::verdict::malformed));
    std::vector<std::string_view> odd = flat(encode_shared_session(sample()));
    odd.pop_back();
    BOOST_TEST(static_cast<int>(decode_shared_session(odd).result) ==
               static_cast<int>(shared_decoding::verdict::malformed));
}

BOOST_AUTO_TEST_CASE(binding_keys_as_hex)
{
    BOOST_TEST(shared_binding_key_text(0xabcULL) == "0000000000000abc");
    BOOST_TEST(*parse_shared_binding_key("0000000000000abc") == 0xabcULL);
    BOOST_TEST(!parse_shared_binding_key("abc").has_value());
    BOOST_TEST(!parse_shared_binding_key("000000000000zabc").has_value());
}

BOOST_AUTO_TEST_CASE(backend_ids_are_indexed_as_hex)
{
    BOOST_TEST(shared_backend_index_key("mcp:", "s-1") == "mcp:bid:732d31");
    BOOST_TEST(shared_backend_index_key("mcp:", std::string("a\0{", 3)) == "mcp:bid:61007b");
}

BOOST_AUTO_TEST_SUITE_END()
