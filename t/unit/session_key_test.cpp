#include "mcp_session/session_key.hpp"

#include <boost/test/unit_test.hpp>

#include <set>
#include <string>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(session_key_form)

BOOST_AUTO_TEST_CASE(canonical_uuid_packs_to_16_bytes_and_round_trips)
{
    const std::string id = "0190a1b2-c3d4-7e5f-8a9b-0123456789ab";
    const auto key = session_key::from_id(id);
    BOOST_TEST_REQUIRE(key.has_value());
    BOOST_TEST((key->form() == id_form::uuid));
    BOOST_TEST(key->size() == session_key::packed_uuid_size);
    BOOST_TEST(key->to_id().value() == id);
}

BOOST_AUTO_TEST_CASE(even_length_lowercase_hex_packs_to_half)
{
    for (const std::string id : {"0190a1b2c3d47e5f8a9b0123456789ab", "ab", "00", "0123456789abcdef0123456789abcdef0123"}) {
        const auto key = session_key::from_id(id);
        BOOST_TEST_REQUIRE(key.has_value());
        BOOST_TEST((key->form() == id_form::lower_hex));
        BOOST_TEST(key->size() == id.size() / 2);
        BOOST_TEST(key->to_id().value() == id);
    }
}

BOOST_AUTO_TEST_CASE(other_ids_stay_verbatim)
{
    for (const std::string id : {"0190A1B2-C3D4-7E5F-8A9B-0123456789AB", "0190A1B2C3D47E5F8A9B0123456789AB",
                                 "0190a1b2c3d47e5f8a9b0123456789a", "0190a1b2-c3d4-7e5f-8a9b-0123456789a",
                                 "0190a1b2-c3d4-7e5f-8a9b_0123456789ab", "0190a1b2-c3d4-7e5f-8a9b-0123456789ag",
                                 "session-42", "a"}) {
        const auto key = session_key::from_id(id);
        BOOST_TEST_REQUIRE(key.has_value());
        BOOST_TEST((key->form() == id_form::verbatim));
        BOOST_TEST(key->size() == id.size());
        BOOST_TEST(key->to_id().value() == id);
    }
}

BOOST_AUTO_TEST_CASE(ids_over_128_bytes_are_kept_as_a_digest)
{
    const std::string jwt_like = "eyJhbGciOiJIUzI1NiJ9." + std::string(400, 'x') + ".sig";
    const auto key = session_key::from_id(jwt_like);
    BOOST_TEST_REQUIRE(key.has_value());
    BOOST_TEST((key->form() == id_form::digest));
    BOOST_TEST(key->size() == session_key::digest_size);
    BOOST_TEST(!key->to_id().has_value());
    // Equal ids, equal digests; a one-byte change, a different one.
    const auto same = session_key::from_id(jwt_like).value();
    BOOST_TEST(key->equals(same.data(), same.size(), same.form()));
    std::string other = jwt_like;
    other.back() = 'h';
    const auto differs = session_key::from_id(other).value();
    BOOST_TEST(!key->equals(differs.data(), differs.size(), differs.form()));
    // A 256-digit hex id is longer than 128 bytes too: digest, not hex.
    BOOST_TEST((session_key::from_id(std::string(256, 'a'))->form() == id_form::digest));
    BOOST_TEST((session_key::from_id(std::string(max_verbatim_id_length, 'a'))->form() == id_form::lower_hex));
    BOOST_TEST((session_key::from_id(std::string(max_verbatim_id_length, 'z'))->form() == id_form::verbatim));
}

BOOST_AUTO_TEST_CASE(unstorable_ids_have_no_key)
{
    BOOST_TEST(!session_key::from_id("").has_value());
    BOOST_TEST(!session_key::from_id("has space").has_value());
    BOOST_TEST(!session_key::from_id(std::string(max_session_id_length + 1, 'a')).has_value());
    BOOST_TEST(session_key::from_id(std::string(max_session_id_length, 'a')).has_value());
}

BOOST_AUTO_TEST_CASE(equality_follows_the_id)
{
    const auto a = session_key::from_id("0190a1b2-c3d4-7e5f-8a9b-0123456789ab").value();
    const auto same = session_key::from_id("0190a1b2-c3d4-7e5f-8a9b-0123456789ab").value();
    const auto upper = session_key::from_id("0190A1B2-C3D4-7E5F-8A9B-0123456789AB").value();
    BOOST_TEST(a.equals(same.data(), same.size(), same.form()));
    BOOST_TEST(!a.equals(upper.data(), upper.size(), upper.form()));
    BOOST_TEST(a.hash(7) == same.hash(7));
    // The same 16 bytes in another form are another id.
    const auto hex = session_key::from_id("0190a1b2c3d47e5f8a9b0123456789ab").value();
    BOOST_TEST(hex.size() == a.size());
    BOOST_TEST(!a.equals(hex.data(), hex.size(), hex.form()));
    BOOST_TEST(a.hash(7) != hex.hash(7));
}

BOOST_AUTO_TEST_CASE(stored_bytes_rebuild_the_same_key)
{
    for (const std::string id : {"0190a1b2-c3d4-7e5f-8a9b-0123456789ab", "opaque-id-1", "deadbeef00"}) {
        const auto key = session_key::from_id(id).value();
        const auto rebuilt = session_key::from_stored(key.data(), key.size(), key.form());
        BOOST_TEST(rebuilt.to_id().value() == id);
        BOOST_TEST(rebuilt.hash(1) == key.hash(1));
        BOOST_TEST(session_key::is_canonical(key.data(), key.size(), static_cast<std::uint8_t>(key.form())));
    }
}

BOOST_AUTO_TEST_CASE(only_the_form_the_zone_gives_is_canonical)
{
    const auto hex = session_key::from_id("deadbeef").value();
    // The packed bytes of a hex id claimed as verbatim are not what the zone stores.
    BOOST_TEST(!session_key::is_canonical(reinterpret_cast<const std::uint8_t*>("deadbeef"), 8, 0));
    BOOST_TEST(session_key::is_canonical(hex.data(), hex.size(), 2));
    BOOST_TEST(!session_key::is_canonical(hex.data(), hex.size(), 1));  // not 16 bytes
    BOOST_TEST(!session_key::is_canonical(hex.data(), hex.size(), 3));  // not 32 bytes
    BOOST_TEST(!session_key::is_canonical(hex.data(), hex.size(), 4));  // no such form
    const std::uint8_t thirty_two[32] = {1, 2, 3};
    BOOST_TEST(session_key::is_canonical(thirty_two, 32, 3));
    BOOST_TEST(!session_key::is_canonical(thirty_two, 0, 0));
}

BOOST_AUTO_TEST_CASE(hash_depends_on_seed_and_spreads_similar_ids)
{
    const auto key = session_key::from_id("session-1").value();
    BOOST_TEST(key.hash(1) != key.hash(2));
    std::set<std::uint64_t> hashes;
    for (int i = 0; i < 1000; ++i) {
        hashes.insert(session_key::from_id("session-" + std::to_string(i)).value().hash(99));
    }
    BOOST_TEST(hashes.size() == 1000u);
}

BOOST_AUTO_TEST_SUITE_END()
