// The file in which a zone's sessions outlive nginx (`state=PATH`): what
// is saved, and the strict reader that refuses anything it did not write.
// The directory holding the file is writable by the worker user, so its
// contents are hostile input: the file is authenticated (HMAC-SHA-256 with
// a key kept outside it) and every field is bounded before it is used.
#pragma once

#include "mcp_session/expiry.hpp"
#include "mcp_session/session_key.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mcp_session {

// Bumped whenever the layout changes; a file of a version this module
// cannot read is refused.
// Version 1 had a public checksum anyone could recompute: refused now.
inline constexpr std::uint32_t state_file_version = 4;
// Version 3 differs only in having no pinned upstream server; version 2
// also in its one-byte backend id size and two id forms (verbatim, UUID).
// Files of both are still read, so an upgrade keeps sessions.
inline constexpr std::uint32_t oldest_state_file_version = 2;

// The key authenticating the file (read from the key file by the glue).
inline constexpr std::size_t state_key_size = 32;

// Highest event id a saved session may claim: far below 2^64, so the
// counter a restored ring goes on from can never wrap to 0 ("never seen").
// 2^53 also stays exact for clients that parse ids as JavaScript numbers.
inline constexpr std::uint64_t max_saved_event_id = std::uint64_t{1} << 53;

// How far in the future a file's own save time may be (clock steps
// between a save and the next start); anything later was not written by
// this host's nginx and is refused.
inline constexpr unix_ms max_state_clock_skew_ms = 60 * 1000;

// One session as saved. Rings are not saved, only where their ids had got
// to, so ids keep increasing and a client resuming after a restart is told
// (`lagged`) how many events it cannot get back.
struct saved_session {
    session_key key;
    session_times times;
    std::uint64_t next_event_id = 0;  // 0: the session never had a ring
    std::uint8_t bound = 0;           // bit 0: principal, bit 1: tenant, bit 2: under the cluster key
    std::uint64_t principal = 0;      // keyed digests, as in the zone
    std::uint64_t tenant = 0;
    std::string backend_id;           // issue mode: the backend's own id
    std::string pinned_server;        // mcp_session_sticky: the upstream server's address
};

// A pinned server's address as nginx names a peer (`127.0.0.1:8081`,
// `[::1]:8081`, `unix:/run/mcp.sock`): visible ASCII, bounded.
inline constexpr std::size_t max_pinned_server_length = 119;
bool is_storable_server_name(std::string_view name);

struct state_header {
    std::uint64_t binding_key = 0;  // the zone's digest key: saved bindings stay comparable
    unix_ms saved_at_ms = 0;
};

// Appends a state file to a string reserved by the caller and never grows
// it, so a snapshot can be taken while the zone lock is held.
class state_writer {
public:
    // Bytes one session takes at most, and the fixed header + trailer.
    static std::size_t record_size(std::size_t id_size, std::size_t backend_id_size, std::size_t pinned_size = 0);
    static std::size_t max_record_size();
    static std::size_t framing_size();

    state_writer(std::string& out, const state_header& header);

    // False (and nothing written) when the reservation is used up.
    bool add(const session_key& key, const session_times& times, std::uint64_t next_event_id, std::uint8_t bound,
             std::uint64_t principal, std::uint64_t tenant, std::string_view backend_id,
             std::string_view pinned_server = {});

    // Writes the count, raises saved_at to the latest access written (two
    // workers' cached clocks differ by a few ms; the reader requires every
    // access at or before saved_at) and appends the MAC keyed with `key`.
    void finish(std::string_view key);

    std::uint64_t count() const { return count_; }

private:
    std::string& out_;
    std::size_t count_at_ = 0;
    std::size_t saved_at_at_ = 0;
    unix_ms saved_at_ = 0;
    std::uint64_t count_ = 0;
};

struct state_contents {
    bool ok = false;
    std::string error;  // why the file was refused (for one log line)
    state_header header;
    std::vector<saved_session> sessions;
};

// What a reader holds a file against.
struct state_limits {
    std::size_t max_sessions = 0;
    std::string_view key;  // state_key_size bytes
    unix_ms now = 0;
};

// Reads a whole file. Refuses bad magic, another version, a MAC that does
// not verify with `limits.key` (checked before any other field is looked
// at), truncation, trailing bytes, more than `max_sessions` sessions, a
// save time before 1970 or more than max_state_clock_skew_ms after `now`,
// and any record the writer could not have produced: ids outside the
// storable rules, non-canonical id forms, unknown binding bits, times out
// of order or after the save, an event id above max_saved_event_id.
state_contents read_state(std::string_view bytes, const state_limits& limits);

// Saved sessions worth restoring at `now`: expiry kept counting while
// nginx was down, so an expired session is never resurrected.
bool worth_restoring(const saved_session& session, const expiry_policy& policy, unix_ms now);

// The times a restored session gets: never after `now` (a file saved up to
// max_state_clock_skew_ms ahead must not lengthen a session's life).
session_times restored_times(const session_times& saved, unix_ms now);

}  // namespace mcp_session
