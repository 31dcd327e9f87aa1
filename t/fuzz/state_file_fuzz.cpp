// The state file reader on arbitrary bytes: it never crashes, never claims
// more sessions than allowed, whatever it accepts is within the bounds it
// promises (event ids, times against the save and now) and is what the
// writer would produce (writing the accepted sessions back gives the same
// bytes).
#include "fuzz_check.hpp"
#include "mcp_session/mac.hpp"
#include "mcp_session/state_file.hpp"

#include <cstdint>
#include <string>
#include <string_view>

using namespace mcp_session;

namespace {

// The seeds in t/fuzz/corpus/state_file are signed with this key.
const std::string key(state_key_size, 'k');
constexpr unix_ms now = 1700000005000;

// Random bytes almost never carry a right MAC, so each input is also read
// with its trailer replaced by the right one: the record parser and the
// bounds behind the authentication get fuzzed too.
std::string with_valid_mac(std::string_view bytes)
{
    std::string fixed(bytes);
    if (fixed.size() < sizeof(sha256_digest)) {
        return fixed;
    }
    fixed.resize(fixed.size() - sizeof(sha256_digest));
    const sha256_digest mac = hmac_sha256(key, fixed);
    return fixed.append(reinterpret_cast<const char*>(mac.data()), mac.size());
}

void check(std::string_view bytes)
{
    constexpr std::size_t max_sessions = 64;
    const state_contents c = read_state(bytes, {max_sessions, key, now});
    FUZZ_CHECK(c.ok == c.error.empty());
    if (!c.ok) {
        FUZZ_CHECK(c.sessions.empty());
        return;
    }
    FUZZ_CHECK(c.sessions.size() <= max_sessions);
    FUZZ_CHECK(c.header.saved_at_ms >= 0 && c.header.saved_at_ms <= now + max_state_clock_skew_ms);
    std::string again;
    again.reserve(state_writer::framing_size() + c.sessions.size() * state_writer::max_record_size());
    state_writer writer(again, c.header);
    for (const saved_session& s : c.sessions) {
        FUZZ_CHECK(s.key.size() >= 1 && s.key.size() <= session_key::max_stored_size);
        FUZZ_CHECK(s.times.created_ms >= 0);
        FUZZ_CHECK(s.times.last_access_ms >= s.times.created_ms);
        FUZZ_CHECK(s.times.last_access_ms <= c.header.saved_at_ms);
        FUZZ_CHECK(s.next_event_id <= max_saved_event_id);
        const session_times restored = restored_times(s.times, now);
        FUZZ_CHECK(restored.created_ms <= now && restored.last_access_ms <= now);
        FUZZ_CHECK(restored.created_ms <= restored.last_access_ms);
        FUZZ_CHECK(is_storable_server_name(s.pinned_server));
        FUZZ_CHECK(writer.add(s.key, s.times, s.next_event_id, s.bound, s.principal, s.tenant, s.backend_id,
                              s.pinned_server));
    }
    writer.finish(key);
    // A file of an older version the reader still takes is rewritten in
    // the current one, which then rewrites to itself.
    std::uint32_t version = 0;
    for (int i = 0; i < 4; ++i) {
        version |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[8 + static_cast<std::size_t>(i)])) << (8 * i);
    }
    if (version == state_file_version) {
        FUZZ_CHECK(again == bytes);
    } else {
        FUZZ_CHECK(version >= oldest_state_file_version);
        const state_contents rewritten = read_state(again, {max_sessions, key, now});
        FUZZ_CHECK(rewritten.ok && rewritten.sessions.size() == c.sessions.size());
    }
    // Authentication: the same bytes under any other key are refused.
    FUZZ_CHECK(!read_state(bytes, {max_sessions, std::string(state_key_size, 'x'), now}).ok);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    check(bytes);
    check(with_valid_mac(bytes));
    return 0;
}
