#include "mcp_session/state_snapshot.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace mcp_session;

namespace {

constexpr unix_ms start = 1700000000000;
const std::string key(state_key_size, 'k');

session_key key_of(const std::string& id) { return *session_key::from_id(id); }

std::string uuid(std::size_t i)
{
    std::string tail = std::to_string(100000 + i);
    return "0190a1b2-c3d4-7e5f-8a9b-0c1d2e" + tail;
}

state_snapshot::added add_session(state_snapshot& s, std::size_t i)
{
    return s.add(key_of(i % 3 ? uuid(i) : "opaque-" + std::to_string(i)), {start + static_cast<unix_ms>(i), start + 500},
                 i, 0, 0, 0, i % 5 ? "" : "backend-" + std::to_string(i));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(state_snapshot_suite)

BOOST_AUTO_TEST_CASE(slices_with_room_made_between_give_one_valid_file)
{
    // Reserved for 2 sessions only: every slice makes its own room first.
    state_snapshot s({0xabcULL, start}, 1 << 20, 2);
    std::size_t added = 0;
    for (std::size_t slice = 0; slice < 10; ++slice) {
        s.make_room(7);
        for (std::size_t i = 0; i < 7; ++i) {
            const std::size_t before = s.size();
            BOOST_TEST((add_session(s, added) == state_snapshot::added::yes));
            BOOST_TEST(s.size() > before);
            ++added;
        }
    }
    BOOST_TEST(s.count() == 70u);
    BOOST_TEST(s.left_out() == 0u);
    const state_contents c = read_state(s.finish(key), {1000, key, start + 1000});
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST_REQUIRE(c.sessions.size() == 70u);
    BOOST_TEST(c.header.binding_key == 0xabcULL);
    BOOST_TEST(c.sessions[68].key.to_id().value_or("") == uuid(68));
    BOOST_TEST(c.sessions[0].key.to_id().value_or("") == "opaque-0");
    BOOST_TEST(c.sessions[0].backend_id == "backend-0");
}

BOOST_AUTO_TEST_CASE(add_never_grows_the_buffer_beyond_the_room_made)
{
    state_snapshot s({1, start}, 1 << 20, 0);
    s.make_room(1);
    std::size_t ok = 0;
    state_snapshot::added last = state_snapshot::added::yes;
    while (ok < 10000 && (last = add_session(s, 1)) == state_snapshot::added::yes) {
        ++ok;
    }
    BOOST_TEST((last == state_snapshot::added::no_room));
    BOOST_TEST(ok >= 2u);  // one of the usual size and one of the largest kind at least
    BOOST_TEST(ok < 10000u);
    BOOST_TEST(s.left_out() == 0u);  // out of room is not left out: the next slice has it
    s.make_room(1);
    BOOST_TEST((add_session(s, 1) == state_snapshot::added::yes));
}

BOOST_AUTO_TEST_CASE(the_file_stays_within_its_bound_and_counts_what_was_left_out)
{
    const std::size_t bound = state_writer::framing_size() + 10 * typical_saved_session_size();
    state_snapshot s({1, start}, bound, 100);
    std::size_t added = 0;
    for (std::size_t slice = 0; slice < 5; ++slice) {
        s.make_room(10);
        for (std::size_t i = 0; i < 10; ++i) {
            added += s.add(key_of(uuid(slice * 10 + i)), {start, start}, 0, 0, 0, 0, "") == state_snapshot::added::yes;
        }
    }
    BOOST_TEST(added == 10u);
    BOOST_TEST(s.left_out() == 40u);
    const std::string& bytes = s.finish(key);
    BOOST_TEST(bytes.size() <= bound);
    const state_contents c = read_state(bytes, {1000, key, start + 1000});
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST(c.sessions.size() == 10u);
}

BOOST_AUTO_TEST_CASE(an_empty_snapshot_is_a_valid_file)
{
    state_snapshot s({7, start}, 1 << 20, 0);
    const state_contents c = read_state(s.finish(key), {10, key, start});
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST(c.sessions.empty());
}

BOOST_AUTO_TEST_CASE(cursor_visits_every_hash_above_the_last_one_passed)
{
    save_cursor c;
    BOOST_TEST(!c.started());
    BOOST_TEST(c.ahead(0));  // nothing passed yet: everything is ahead
    c.passed(40);
    BOOST_TEST(!c.ahead(40));
    BOOST_TEST(!c.ahead(3));   // created meanwhile below the cursor: the next save has it
    BOOST_TEST(c.ahead(41));   // created meanwhile above it: this save has it
    BOOST_TEST(c.last() == 40u);
}

BOOST_AUTO_TEST_CASE(a_slice_stops_at_its_budget_but_never_between_equal_hashes)
{
    save_cursor c;
    BOOST_TEST(!c.may_stop_before(5, 1, 2));
    c.passed(5);
    BOOST_TEST(!c.may_stop_before(9, 1, 2));  // budget not used up
    c.passed(9);
    BOOST_TEST(c.may_stop_before(12, 2, 2));
    BOOST_TEST(!c.may_stop_before(9, 2, 2));  // a colliding id goes with its twin
    BOOST_TEST(!c.may_stop_before(9, 50, 2));
}

BOOST_AUTO_TEST_CASE(a_lease_outlasts_a_short_interval)
{
    BOOST_TEST(save_lease_ms(1000) == 60 * 1000);
    BOOST_TEST(save_lease_ms(10 * 60 * 1000) == 10 * 60 * 1000);
}

BOOST_AUTO_TEST_SUITE_END()
