// A state file built a slice at a time, so a save holds the zone lock for
// one slice of sessions, never for the whole zone: where the copy resumes
// after the lock was released, how much memory it may take, and when the
// next save is due.
#pragma once

#include "mcp_session/state_file.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_session {

// Sessions are visited in the order of their id hash (the zone's index
// keeps it: see index_buckets.hpp; no deletion or creation changes it for
// the others), and a slice goes on from the first hash above the last one
// copied. A slice never ends
// between two equal hashes, so colliding ids are copied together and none
// is skipped or copied twice.
class save_cursor {
public:
    // Whether a session of hash `hash` is still to be visited.
    bool ahead(std::uint64_t hash) const { return !started_ || hash > last_; }

    // Whether a slice that has copied `copied` sessions may stop before
    // the next one, of hash `next`.
    bool may_stop_before(std::uint64_t next, std::size_t copied, std::size_t budget) const
    {
        return copied >= budget && (!started_ || next != last_);
    }

    void passed(std::uint64_t hash)
    {
        started_ = true;
        last_ = hash;
    }

    bool started() const { return started_; }
    std::uint64_t last() const { return last_; }

private:
    bool started_ = false;
    std::uint64_t last_ = 0;
};

// The file being built. Room is made between slices (it may allocate);
// add() under the lock never allocates. The file never grows beyond
// `max_bytes` (the reader refuses a file larger than the zone): sessions
// beyond it are left out and counted.
class state_snapshot {
public:
    state_snapshot(const state_header& header, std::size_t max_bytes, std::size_t expected_sessions);
    state_snapshot(const state_snapshot&) = delete;
    state_snapshot& operator=(const state_snapshot&) = delete;

    // Outside the lock: room for `sessions` more of the usual size, and
    // one of the largest kind.
    void make_room(std::size_t sessions);

    enum class added {
        yes,
        no_room,   // the room made is used up: end the slice, make room, go on
        left_out,  // the file would outgrow its bound: counted, never written
    };

    // Under the lock; writes nothing unless `yes`.
    added add(const session_key& key, const session_times& times, std::uint64_t next_event_id, std::uint8_t bound,
              std::uint64_t principal, std::uint64_t tenant, std::string_view backend_id,
              std::string_view pinned_server = {});

    // The finished file (count, save time and MAC written): done once,
    // off the event loop, since the MAC reads every byte.
    const std::string& finish(std::string_view key);

    std::uint64_t count() const { return writer_->count(); }
    std::size_t left_out() const { return left_out_; }
    std::size_t size() const { return bytes_.size(); }

private:
    std::string bytes_;
    std::optional<state_writer> writer_;
    std::size_t max_bytes_;
    std::size_t left_out_ = 0;
};

// Bytes a session with a packed UUID and no backend id takes: what most
// sessions are, used to reserve a snapshot's memory once.
std::size_t typical_saved_session_size();

// A save in progress holds the zone's next-save time this long past its
// start, so no other worker starts one meanwhile; should the saving
// worker die mid-save, saves resume after it.
unix_ms save_lease_ms(unix_ms interval_ms);

}  // namespace mcp_session
