#include "mcp_session/state_file.hpp"

#include "mcp_session/mac.hpp"

#include <boost/test/unit_test.hpp>

#include <limits>

using namespace mcp_session;

namespace {

constexpr unix_ms start = 1700000000000;
const std::string key(state_key_size, 'k');

state_limits limits(std::size_t max_sessions, unix_ms now = start + 5000)
{
    return {max_sessions, key, now};
}

// What an attacker who can write the file but not read the key does: edit
// bytes, then put a MAC over them with some key of their own.
std::string resigned(std::string bytes, std::string_view with_key)
{
    bytes.resize(bytes.size() - 32);
    const sha256_digest mac = hmac_sha256(with_key, bytes);
    return bytes.append(reinterpret_cast<const char*>(mac.data()), mac.size());
}

void put_u64(std::string& bytes, std::size_t at, std::uint64_t v)
{
    for (int i = 0; i < 8; ++i) {
        bytes[at + static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
    }
}

// Offsets in a file made by file_with: the header, then the first record.
constexpr std::size_t saved_at_offset = 24;
constexpr std::size_t first_record = 40;

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
    w.finish(key);
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(state_file)

BOOST_AUTO_TEST_CASE(round_trip_keeps_every_field)
{
    const std::string bytes = file_with(5, 5);
    const state_contents c = read_state(bytes, limits(100));
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST(c.header.binding_key == 0xfeedULL);
    BOOST_TEST(c.header.saved_at_ms == start + 1000);  // raised to the latest access written
    BOOST_TEST_REQUIRE(c.sessions.size() == 5u);
    const saved_session& s = c.sessions[3];
    BOOST_TEST((s.key.form() == id_form::uuid));
    BOOST_TEST(s.key.to_id().value() == "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4013");
    BOOST_TEST(s.times.created_ms == start + 3);
    BOOST_TEST(s.times.last_access_ms == start + 1000);
    BOOST_TEST(s.next_event_id == 3u);
    BOOST_TEST(s.bound == 3);
    BOOST_TEST(s.principal == 21u);
    BOOST_TEST(s.tenant == 33u);
    BOOST_TEST(s.backend_id == "backend-3");
    BOOST_TEST(c.sessions[0].key.to_id().value() == "opaque-0");
    BOOST_TEST((c.sessions[0].key.form() == id_form::verbatim));
    BOOST_TEST(c.sessions[1].backend_id.empty());
}

BOOST_AUTO_TEST_CASE(empty_zone_is_a_valid_file)
{
    const state_contents c = read_state(file_with(0, 0), limits(10));
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
    w.finish(key);
    BOOST_TEST(out.capacity() == capacity);
    BOOST_TEST(added == w.count());
    BOOST_TEST(added >= 2u);
    BOOST_TEST(read_state(out, limits(10000)).sessions.size() == added);
}

BOOST_AUTO_TEST_CASE(every_truncation_is_refused)
{
    const std::string bytes = file_with(4, 4);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        BOOST_TEST(!read_state(std::string_view(bytes).substr(0, n), limits(100)).ok, "kept " << n << " bytes");
    }
}

BOOST_AUTO_TEST_CASE(any_flipped_byte_is_refused)
{
    const std::string bytes = file_with(3, 3);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::string bad = bytes;
        bad[i] = static_cast<char>(bad[i] ^ 0x20);
        BOOST_TEST(!read_state(bad, limits(100)).ok, "byte " << i);
    }
}

BOOST_AUTO_TEST_CASE(foreign_files_are_refused_with_a_reason)
{
    BOOST_TEST(read_state("", limits(10)).error.find("truncated") == 0u);
    BOOST_TEST(read_state(std::string(96, 'x'), limits(10)).error == "not a state file");
    std::string other = file_with(1, 1);
    other[8] = 9;  // version 9
    BOOST_TEST(read_state(other, limits(10)).error.find("version 9") == 0u);
    BOOST_TEST(read_state(file_with(1, 1) + "x", limits(10)).error.find("authentication failed") == 0u);
}

// Found by t/fuzz/state_file_fuzz.cpp: the reader ignored the reserved
// header field, so it accepted files the writer never makes.
BOOST_AUTO_TEST_CASE(a_set_reserved_field_is_refused_even_with_a_valid_mac)
{
    std::string bytes = file_with(1, 1);
    bytes[13] = 0x7a;
    BOOST_TEST(read_state(resigned(bytes, key), limits(10)).error.find("reserved") == 0u);
}

// Issue 10 item 13: the old trailer was a public checksum, so anyone able
// to write the directory could plant sessions. A MAC with another key (or
// none at all) is refused before any field is believed.
BOOST_AUTO_TEST_CASE(a_file_not_signed_with_the_key_is_refused)
{
    std::string planted = file_with(2, 2);
    planted[first_record + 46] ^= 1;  // the first byte of the first session id
    for (const std::string& other_key : {std::string(), std::string(state_key_size, 'x'), key + "k"}) {
        const state_contents c = read_state(resigned(planted, other_key), limits(10));
        BOOST_TEST(!c.ok);
        BOOST_TEST(c.error.find("authentication failed") == 0u, c.error);
        BOOST_TEST(c.sessions.empty());
    }
    BOOST_TEST(read_state(resigned(planted, key), limits(10)).ok);  // the key holder's own edit
    // A reader without a proper key accepts nothing, not even a file made with that key.
    std::string none;
    none.reserve(state_writer::framing_size());
    state_writer w(none, {});
    w.finish("");
    BOOST_TEST(!read_state(none, {10, "", start}).ok);
}

BOOST_AUTO_TEST_CASE(an_event_id_that_would_wrap_the_counter_is_refused)
{
    std::string bytes = file_with(1, 1);
    for (const std::uint64_t id : {std::numeric_limits<std::uint64_t>::max(), max_saved_event_id + 1}) {
        put_u64(bytes, first_record + 16, id);
        const state_contents c = read_state(resigned(bytes, key), limits(10));
        BOOST_TEST(c.error.find("event id") != std::string::npos, c.error);
    }
    put_u64(bytes, first_record + 16, max_saved_event_id);
    BOOST_TEST(read_state(resigned(bytes, key), limits(10)).ok);
}

// A creation (or access) after the save would make a session that never
// expires and that stops the sweep walking the creation order.
BOOST_AUTO_TEST_CASE(times_after_the_save_are_refused)
{
    const std::string good = file_with(1, 1);
    std::string bytes = good;
    put_u64(bytes, first_record, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() - 5));
    put_u64(bytes, first_record + 8, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() - 1));
    BOOST_TEST(read_state(resigned(bytes, key), limits(10)).error.find("times out of bounds") != std::string::npos);
    bytes = good;
    put_u64(bytes, first_record + 8, static_cast<std::uint64_t>(start + 1001));  // saved at start + 1000
    BOOST_TEST(read_state(resigned(bytes, key), limits(10)).error.find("times out of bounds") != std::string::npos);
    bytes = good;
    put_u64(bytes, first_record, static_cast<std::uint64_t>(-1));
    BOOST_TEST(read_state(resigned(bytes, key), limits(10)).error.find("times out of bounds") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_file_saved_in_the_future_is_refused)
{
    const std::string bytes = file_with(1, 1);  // saved at start + 1000 (its latest access)
    BOOST_TEST(read_state(bytes, limits(10, start + 1000 - max_state_clock_skew_ms)).ok);
    BOOST_TEST(read_state(bytes, limits(10, start + 999 - max_state_clock_skew_ms)).error.find("in the future") !=
               std::string::npos);
    std::string negative = bytes;
    put_u64(negative, saved_at_offset, static_cast<std::uint64_t>(-5));
    BOOST_TEST(!read_state(resigned(negative, key), limits(10)).ok);
}

BOOST_AUTO_TEST_CASE(the_save_time_covers_every_access_written)
{
    std::string out;
    out.reserve(state_writer::framing_size() + state_writer::max_record_size());
    state_writer w(out, {0, start});
    w.add(key_of("late"), {start, start + 7}, 0, 0, 0, 0, "");  // touched by a worker whose clock ran ahead
    w.finish(key);
    const state_contents c = read_state(out, limits(10));
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST(c.header.saved_at_ms == start + 7);
}

BOOST_AUTO_TEST_CASE(restored_times_are_never_after_now)
{
    BOOST_TEST(restored_times({start, start + 10}, start + 20).created_ms == start);
    BOOST_TEST(restored_times({start, start + 10}, start + 20).last_access_ms == start + 10);
    BOOST_TEST(restored_times({start + 30, start + 40}, start + 20).created_ms == start + 20);
    BOOST_TEST(restored_times({start + 30, start + 40}, start + 20).last_access_ms == start + 20);
}

BOOST_AUTO_TEST_CASE(more_sessions_than_the_zone_holds_are_refused)
{
    const state_contents c = read_state(file_with(5, 5), limits(4));
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
        session_key::from_stored(reinterpret_cast<const std::uint8_t*>(uuid.data()), uuid.size(), id_form::verbatim);
    w.add(verbatim, {start, start}, 0, 0, 0, 0, "");
    w.finish(key);
    BOOST_TEST(read_state(out, limits(10)).error.find("malformed id") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(hex_digest_and_long_backend_ids_round_trip)
{
    std::string out;
    out.reserve(state_writer::framing_size() + 3 * state_writer::max_record_size());
    state_writer w(out, {});
    const std::string hex = "0190a1b2c3d47e5f8a9b0123456789ab";
    const std::string jwt = "eyJ" + std::string(3000, 'q');
    const std::string long_backend(5000, 'b');
    BOOST_TEST(w.add(key_of(hex), {start, start}, 0, 0, 0, 0, long_backend));
    BOOST_TEST(w.add(key_of(jwt), {start, start}, 0, 0, 0, 0, ""));
    BOOST_TEST(!w.add(key_of("x"), {start, start}, 0, 0, 0, 0, std::string(max_session_id_length + 1, 'b')));
    w.finish(key);
    const state_contents c = read_state(out, limits(10));
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST_REQUIRE(c.sessions.size() == 2u);
    BOOST_TEST((c.sessions[0].key.form() == id_form::lower_hex));
    BOOST_TEST(c.sessions[0].key.to_id().value() == hex);
    BOOST_TEST(c.sessions[0].backend_id == long_backend);
    const session_key digest = key_of(jwt);
    BOOST_TEST(c.sessions[1].key.equals(digest.data(), digest.size(), id_form::digest));
}

// A file as an older version wrote it. Version 2: a one-byte backend id
// size, ids packed only when they were canonical UUIDs. Version 3: a
// two-byte backend id size and no pinned server.
std::string legacy_file(std::uint32_t version, std::string_view id, std::string_view backend)
{
    std::string out("MCPSTATE", 8);
    auto le = [&out](std::uint64_t v, int size) {
        for (int i = 0; i < size; ++i) {
            out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
        }
    };
    le(version, 4);
    le(0, 4);
    le(0xfeed, 8);
    le(static_cast<std::uint64_t>(start), 8);
    le(1, 8);
    le(static_cast<std::uint64_t>(start), 8);
    le(static_cast<std::uint64_t>(start), 8);
    le(5, 8);
    le(0, 8);
    le(0, 8);
    out.push_back(0);  // bound
    out.push_back(0);  // verbatim
    out.push_back(static_cast<char>(id.size()));
    le(backend.size(), version == 2 ? 1 : 2);
    out.append(id).append(backend);
    const sha256_digest mac = hmac_sha256(key, out);
    return out.append(reinterpret_cast<const char*>(mac.data()), mac.size());
}

std::string version_2_file(std::string_view id, std::string_view backend) { return legacy_file(2, id, backend); }

BOOST_AUTO_TEST_CASE(version_2_files_are_read_and_hex_ids_repacked)
{
    const state_contents c = read_state(version_2_file("0190a1b2c3d47e5f8a9b0123456789ab", "backend-1"), limits(10));
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST_REQUIRE(c.sessions.size() == 1u);
    BOOST_TEST((c.sessions[0].key.form() == id_form::lower_hex));
    BOOST_TEST(c.sessions[0].key.to_id().value() == "0190a1b2c3d47e5f8a9b0123456789ab");
    BOOST_TEST(c.sessions[0].backend_id == "backend-1");
    BOOST_TEST(c.sessions[0].next_event_id == 5u);
    BOOST_TEST(read_state(version_2_file("opaque", ""), limits(10)).ok);
    BOOST_TEST(!read_state(version_2_file("has space", ""), limits(10)).ok);
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


BOOST_AUTO_TEST_CASE(pinned_servers_round_trip_and_bad_ones_are_refused)
{
    std::string out;
    out.reserve(state_writer::framing_size() + 3 * state_writer::max_record_size());
    state_writer w(out, {});
    const std::string longest(max_pinned_server_length, 'u');
    BOOST_TEST(w.add(key_of("pinned"), {start, start}, 0, 0, 0, 0, "b-1", "127.0.0.1:8081"));
    BOOST_TEST(w.add(key_of("longest"), {start, start}, 0, 0, 0, 0, "", longest));
    // A name the zone could not hold is saved unpinned, not refused later.
    BOOST_TEST(w.add(key_of("spaced"), {start, start}, 0, 0, 0, 0, "", "unix:/a b"));
    w.finish(key);
    const state_contents c = read_state(out, limits(10));
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST_REQUIRE(c.sessions.size() == 3u);
    BOOST_TEST(c.sessions[0].pinned_server == "127.0.0.1:8081");
    BOOST_TEST(c.sessions[0].backend_id == "b-1");
    BOOST_TEST(c.sessions[1].pinned_server == longest);
    BOOST_TEST(c.sessions[2].pinned_server.empty());

    // A file someone edited to pin a session to a name with a control
    // byte (resigned, so only the field check can catch it).
    std::string edited = out;
    const std::size_t at = edited.find("127.0.0.1:8081");
    BOOST_TEST_REQUIRE(at != std::string::npos);
    edited[at + 3] = '\n';
    const state_contents bad = read_state(resigned(edited, key), limits(10));
    BOOST_TEST(!bad.ok);
    BOOST_TEST(bad.error.find("malformed fields") != std::string::npos, bad.error);
}

BOOST_AUTO_TEST_CASE(version_3_files_are_read_unpinned)
{
    const state_contents c = read_state(legacy_file(3, "s1", "b-3"), limits(10));
    BOOST_TEST_REQUIRE(c.ok, c.error);
    BOOST_TEST_REQUIRE(c.sessions.size() == 1u);
    BOOST_TEST(c.sessions[0].backend_id == "b-3");
    BOOST_TEST(c.sessions[0].next_event_id == 5u);
    BOOST_TEST(c.sessions[0].pinned_server.empty());
}

BOOST_AUTO_TEST_SUITE_END()
