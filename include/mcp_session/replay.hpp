// Which events a stream sends: the ring's window of retained ids and the
// replay decision for a cursor (Last-Event-ID, or where a live stream is).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mcp_session {

// A ring of `capacity` events whose ids run 1, 2, 3, ... without gaps;
// when full, publishing drops the oldest. Ids below `first_kept` were
// never in this ring (it was made afresh after a restart restored the
// session's id counter), so they count as dropped, not retained.
//
// Ids below `quiet_below` were only markers (init, heartbeat) of a ring
// given back when its stream closed: missing them is no loss, so they are
// never announced as dropped.
struct ring_window {
    std::uint64_t next_id = 1;
    std::uint32_t capacity = 256;
    std::uint64_t first_kept = 1;
    std::uint64_t quiet_below = 1;

    std::uint64_t newest() const { return next_id - 1; }
    // Equals next_id when the ring is empty.
    std::uint64_t oldest() const
    {
        const std::uint64_t by_capacity = newest() < capacity ? 1 : next_id - capacity;
        return by_capacity > first_kept ? by_capacity : (first_kept < next_id ? first_kept : next_id);
    }
    std::uint64_t retained() const { return next_id - oldest(); }
    std::size_t slot(std::uint64_t id) const { return static_cast<std::size_t>((id - 1) % capacity); }
    bool full() const { return retained() == capacity; }
};

struct replay_plan {
    // Events the client can no longer get: announce them with one
    // `lagged` event carrying this count, before first_id.
    std::uint64_t dropped = 0;
    std::uint64_t first_id = 0;  // first event to send
    std::uint64_t last_id = 0;   // last event to send; < first_id: none

    bool has_events() const { return first_id <= last_id; }
    std::uint64_t count() const { return has_events() ? last_id - first_id + 1 : 0; }
};

// `cursor` is the last id the client has; an id from the future (a stale
// id, or one of another session) replays nothing and waits for new events.
replay_plan plan_replay(std::uint64_t cursor, const ring_window& ring);

}  // namespace mcp_session
