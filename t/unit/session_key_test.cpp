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
    BOOST_TEST(key->packed_uuid());
    BOOST_TEST(key->size() == session_key::packed_uuid_size);
    BOOST_TEST(key->to_id() == id);
}

BOOST_AUTO_TEST_CASE(non_canonical_ids_stay_verbatim)
{
    for (const std::string id : {"0190A1B2-C3D4-7E5F-8A9B-0123456789AB", "0190a1b2c3d47e5f8a9b0123456789ab",
                                 "0190a1b2-c3d4-7e5f-8a9b-0123456789a", "0190a1b2-c3d4-7e5f-8a9b_0123456789ab",
                                 "0190a1b2-c3d4-7e5f-8a9b-0123456789ag", "session-42"}) {
        const auto key = session_key::from_id(id);
        BOOST_TEST_REQUIRE(key.has_value());
        BOOST_TEST(!key->packed_uuid());
        BOOST_TEST(key->size() == id.size());
        BOOST_TEST(key->to_id() == id);
    }
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
    BOOST_TEST(a.equals(same.data(), same.size(), same.packed_uuid()));
    BOOST_TEST(!a.equals(upper.data(), upper.size(), upper.packed_uuid()));
    BOOST_TEST(a.hash(7) == same.hash(7));
}

BOOST_AUTO_TEST_CASE(stored_bytes_rebuild_the_same_key)
{
    for (const std::string id : {"0190a1b2-c3d4-7e5f-8a9b-0123456789ab", "opaque-id-1"}) {
        const auto key = session_key::from_id(id).value();
        const auto rebuilt = session_key::from_stored(key.data(), key.size(), key.packed_uuid());
        BOOST_TEST(rebuilt.to_id() == id);
        BOOST_TEST(rebuilt.hash(1) == key.hash(1));
    }
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
