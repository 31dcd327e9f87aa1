// The file in which a zone's sessions outlive nginx (`state=PATH`): what
// is saved, and the strict reader that refuses anything it did not write.
#pragma once

#include "mcp_session/expiry.hpp"
#include "mcp_session/session_key.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mcp_session {

// Bumped whenever the layout changes; a file of another version is refused.
inline constexpr std::uint32_t state_file_version = 1;

// One session as saved. Rings are not saved, only where their ids had got
// to, so ids keep increasing and a client resuming after a restart is told
// (`lagged`) how many events it cannot get back.
struct saved_session {
    session_key key;
    session_times times;
    std::uint64_t next_event_id = 0;  // 0: the session never had a ring
    std::uint8_t bound = 0;           // bit 0: principal, bit 1: tenant
    std::uint64_t principal = 0;      // keyed digests, as in the zone
    std::uint64_t tenant = 0;
    std::string backend_id;           // issue mode: the backend's own id
};

struct state_header {
    std::uint64_t binding_key = 0;  // the zone's digest key: saved bindings stay comparable
    unix_ms saved_at_ms = 0;
};

// Appends a state file to a string reserved by the caller and never grows
// it, so a snapshot can be taken while the zone lock is held.
class state_writer {
public:
    // Bytes one session takes at most, and the fixed header + trailer.
    static std::size_t record_size(std::size_t id_size, std::size_t backend_id_size);
    static std::size_t max_record_size();
    static std::size_t framing_size();

    state_writer(std::string& out, const state_header& header);

    // False (and nothing written) when the reservation is used up.
    bool add(const session_key& key, const session_times& times, std::uint64_t next_event_id, std::uint8_t bound,
             std::uint64_t principal, std::uint64_t tenant, std::string_view backend_id);

    // Writes the count and checksum; the string is then the whole file.
    void finish();

    std::uint64_t count() const { return count_; }

private:
    std::string& out_;
    std::size_t count_at_ = 0;
    std::uint64_t count_ = 0;
};

struct state_contents {
    bool ok = false;
    std::string error;  // why the file was refused (for one log line)
    state_header header;
    std::vector<saved_session> sessions;
};

// Reads a whole file. Refuses bad magic, another version, a wrong checksum,
// truncation, trailing bytes, more than `max_sessions` sessions, and any
// record the writer could not have produced (ids outside the storable
// rules, non-canonical id forms, unknown binding bits, times out of order).
state_contents read_state(std::string_view bytes, std::size_t max_sessions);

// Saved sessions worth restoring at `now`: expiry kept counting while
// nginx was down, so an expired session is never resurrected.
bool worth_restoring(const saved_session& session, const expiry_policy& policy, unix_ms now);

}  // namespace mcp_session
