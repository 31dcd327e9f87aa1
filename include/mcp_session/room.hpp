// How far the zone may go to find room for one allocation: the bounded
// work limit_req and ssl_session_cache do, and whose memory may be taken.
#pragma once

#include "mcp_session/event.hpp"

#include <cstddef>

namespace mcp_session {

enum class room_purpose {
    session,  // a new session's record, or its bindings and backend id
    stream,   // the ring of a session opening its own stream (GET)
    event,    // an event for a session: published message or heartbeat, or the ring it needs
};

struct room_policy {
    std::size_t expire = 0;             // expired sessions removed first (each frees memory)
    std::size_t evict_unused = 0;       // then at most this many never-used sessions, least recently used first
    std::size_t evict_established = 0;  // then at most this many established ones
    bool drop_own_events = false;       // then the session's own oldest events, the newest kept
};

// A full zone keeps taking sessions (a few idle ones make room: records
// share one slab class, so one victim almost always frees a chunk), and a
// stream may push out a few sessions nobody used; an event never costs
// another live session its place: it takes expired memory or its own
// session's oldest events, or it is refused (503).
constexpr room_policy room_policy_for(room_purpose purpose)
{
    switch (purpose) {
    case room_purpose::session:
        return {2, 8, 8, false};
    case room_purpose::stream:
        return {8, 64, 0, false};
    case room_purpose::event:
        return {8, 0, 0, true};
    }
    return {};
}

// The init marker is written by the GET that opens the session's stream,
// right after its ring: it gets what the stream got. Every other event
// (published messages, progress, heartbeats) is an event.
constexpr room_purpose room_purpose_of(event_kind kind)
{
    return kind == event_kind::init ? room_purpose::stream : room_purpose::event;
}

}  // namespace mcp_session
