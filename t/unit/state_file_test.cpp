#include "mcp_session/state_file.hpp"

#include <boost/test/unit_test.hpp>

using namespace mcp_session;

namespace {

constexpr unix_ms start = 1700000000000;

session_key key_of(std::string_view id) { return *session_key::from_id(id); }

std::string file_with(std::size_t sessions, std::size_t reserve_records)
{
    std::string out;
    out.reserve(state_writer::framing_size() + reserve_records * state_writer::max_record_size());
    state_writer w(out, {0xfeedULL, start});
    for (std::size_t i = 0; i < sessions; ++i) {
        const std::string id = i % 2 ? "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f40" + std::to_string(10 + i % 90)
                                     : "opaque-" + std::to_string(i);
        w.add(key_of(id), {start + static_cast<unix_ms>(i), start + 1000}, i, static_cast<std::uint8_t>(i % 4), i * 7,
              i * 11, i % 3 ? "" : "backend-" + std::to_string(i));
    }
    w.finish();
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(state_file)

BOOST_AUTO_TEST_CASE(round_trip_keeps_every_field)
{
    const std::string bytes = file_with(5, 5);
    const state_contents c = read_state(bytes, 100);
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST(c.header.binding_key == 0xfeedULL);
    BOOST_TEST(c.header.saved_at_ms == start);
    BOOST_TEST_REQUIRE(c.sessions.size() == 5u);
    const saved_session& s = c.sessions[3];
    BOOST_TEST(s.key.packed_uuid());
    BOOST_TEST(s.key.to_id() == "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4013");
    BOOST_TEST(s.times.created_ms == start + 3);
    BOOST_TEST(s.times.last_access_ms == start + 1000);
    BOOST_TEST(s.next_event_id == 3u);
    BOOST_TEST(s.bound == 3);
    BOOST_TEST(s.principal == 21u);
    BOOST_TEST(s.tenant == 33u);
    BOOST_TEST(s.backend_id == "backend-3");
    BOOST_TEST(c.sessions[0].key.to_id() == "opaque-0");
    BOOST_TEST(!c.sessions[0].key.packed_uuid());
    BOOST_TEST(c.sessions[1].backend_id.empty());
}

BOOST_AUTO_TEST_CASE(empty_zone_is_a_valid_file)
{
    const state_contents c = read_state(file_with(0, 0), 10);
    BOOST_TEST(c.ok);
    BOOST_TEST(c.sessions.empty());
}

BOOST_AUTO_TEST_CASE(writer_never_grows_past_its_reservation)
{
    std::string out;
    out.reserve(state_writer::framing_size() + 2 * state_writer::max_record_size());
    const std::size_t capacity = out.capacity();
    state_writer w(out, {});
    std::size_t added = 0;
    for (int i = 0; i < 1000; ++i) {
        added += w.add(key_of("s" + std::to_string(i)), {start, start}, 0, 0, 0, 0, "") ? 1 : 0;
    }
    w.finish();
    BOOST_TEST(out.capacity() == capacity);
    BOOST_TEST(added == w.count());
    BOOST_TEST(added >= 2u);
    BOOST_TEST(read_state(out, 10000).sessions.size() == added);
}

BOOST_AUTO_TEST_CASE(every_truncation_is_refused)
{
    const std::string bytes = file_with(4, 4);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        BOOST_TEST(!read_state(std::string_view(bytes).substr(0, n), 100).ok, "kept " << n << " bytes");
    }
}

BOOST_AUTO_TEST_CASE(any_flipped_byte_is_refused)
{
    const std::string bytes = file_with(3, 3);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::string bad = bytes;
        bad[i] = static_cast<char>(bad[i] ^ 0x20);
        BOOST_TEST(!read_state(bad, 100).ok, "byte " << i);
    }
}

BOOST_AUTO_TEST_CASE(foreign_files_are_refused_with_a_reason)
{
    BOOST_TEST(read_state("", 10).error.find("truncated") == 0u);
    BOOST_TEST(read_state(std::string(64, 'x'), 10).error == "not a state file");
    std::string other = file_with(1, 1);
    other[8] = 9;  // version 9
    BOOST_TEST(read_state(other, 10).error.find("version 9") == 0u);
    BOOST_TEST(read_state(file_with(1, 1) + "x", 10).error.find("checksum") == 0u);
}

// Found by t/fuzz/state_file_fuzz.cpp: the reader ignored the reserved
// header field, so it accepted files the writer never makes.
BOOST_AUTO_TEST_CASE(a_set_reserved_field_is_refused_even_with_a_valid_checksum)
{
    std::string bytes = file_with(1, 1);
    bytes[13] = 0x7a;
    std::uint64_t h = 1469598103934665603ULL;
    for (std::size_t i = 0; i < bytes.size() - 8; ++i) {
        h = (h ^ static_cast<std::uint8_t>(bytes[i])) * 1099511628211ULL;
    }
    for (int i = 0; i < 8; ++i) {
        bytes[bytes.size() - 8 + static_cast<std::size_t>(i)] = static_cast<char>((h >> (8 * i)) & 0xff);
    }
    BOOST_TEST(read_state(bytes, 10).error.find("reserved") == 0u);
}

BOOST_AUTO_TEST_CASE(more_sessions_than_the_zone_holds_are_refused)
{
    const state_contents c = read_state(file_with(5, 5), 4);
    BOOST_TEST(!c.ok);
    BOOST_TEST(c.error.find("more than the zone can hold") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_uuid_stored_verbatim_is_not_what_the_writer_makes)
{
    std::string out;
    out.reserve(state_writer::framing_size() + state_writer::max_record_size());
    state_writer w(out, {});
    const std::string uuid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4012";
    const session_key verbatim =
        session_key::from_stored(reinterpret_cast<const std::uint8_t*>(uuid.data()), uuid.size(), false);
    w.add(verbatim, {start, start}, 0, 0, 0, 0, "");
    w.finish();
    BOOST_TEST(read_state(out, 10).error.find("malformed id") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(expired_sessions_are_not_restored)
{
    const expiry_policy policy{60 * 1000, 3600 * 1000};
    saved_session s;
    s.times = {start, start + 30 * 1000};
    BOOST_TEST(worth_restoring(s, policy, start + 89 * 1000));
    BOOST_TEST(!worth_restoring(s, policy, start + 90 * 1000));   // idle limit counted while down
    s.times.last_access_ms = start + 3599 * 1000;
    BOOST_TEST(!worth_restoring(s, policy, start + 3600 * 1000));  // lifetime too
}

BOOST_AUTO_TEST_SUITE_END()
