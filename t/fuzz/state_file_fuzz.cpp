// The state file reader on arbitrary bytes: it never crashes, never claims
// more sessions than allowed, and whatever it accepts is what the writer
// would produce (writing the accepted sessions back gives the same bytes).
#include "fuzz_check.hpp"
#include "mcp_session/state_file.hpp"

#include <cstdint>
#include <string>
#include <string_view>

using namespace mcp_session;

namespace {

// The file's trailer is an FNV-1a 64 of everything before it, little
// endian. Random bytes almost never carry a right one, so each input is
// also read with its trailer corrected: the record parser gets fuzzed too.
std::string with_valid_checksum(std::string_view bytes)
{
    std::string fixed(bytes);
    if (fixed.size() < 8) {
        return fixed;
    }
    std::uint64_t h = 1469598103934665603ULL;
    for (std::size_t i = 0; i < fixed.size() - 8; ++i) {
        h = (h ^ static_cast<std::uint8_t>(fixed[i])) * 1099511628211ULL;
    }
    for (int i = 0; i < 8; ++i) {
        fixed[fixed.size() - 8 + static_cast<std::size_t>(i)] = static_cast<char>((h >> (8 * i)) & 0xff);
    }
    return fixed;
}

void check(std::string_view bytes)
{
    constexpr std::size_t max_sessions = 64;
    const state_contents c = read_state(bytes, max_sessions);
    FUZZ_CHECK(c.ok == c.error.empty());
    if (!c.ok) {
        FUZZ_CHECK(c.sessions.empty());
        return;
    }
    FUZZ_CHECK(c.sessions.size() <= max_sessions);
    std::string again;
    again.reserve(state_writer::framing_size() + c.sessions.size() * state_writer::max_record_size());
    state_writer writer(again, c.header);
    for (const saved_session& s : c.sessions) {
        FUZZ_CHECK(s.key.size() >= 1 && s.key.size() <= max_session_id_length);
        FUZZ_CHECK(s.times.last_access_ms >= s.times.created_ms);
        FUZZ_CHECK(writer.add(s.key, s.times, s.next_event_id, s.bound, s.principal, s.tenant, s.backend_id));
    }
    writer.finish();
    FUZZ_CHECK(again == bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    check(bytes);
    check(with_valid_checksum(bytes));
    return 0;
}
