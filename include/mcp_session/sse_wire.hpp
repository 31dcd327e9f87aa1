// How a session's stream puts the seed's event kinds on the wire, per
// negotiated MCP revision, so that every major client handles them.
//
// The ring holds messages only (message, progress); the markers (the
// connect marker, heartbeats, lost-event notices) are written by the
// stream itself and carry the stream's cursor, never an id of their own,
// so they cannot push a message out of the ring.
#pragma once

#include "mcp_session/event.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace mcp_session {

// mcp_session_stream_events: `compatible` (default) writes every message
// as `event: message` and the markers as forms clients skip; `seed`
// writes the seed's named events with JSON data.
enum class stream_vocabulary : std::uint8_t { compatible, seed };

// The first revision with priming events (an id with empty data) and
// server-initiated closes announced with `retry:`. Older clients fail on
// an event with empty data, so they get SSE comments instead.
inline constexpr std::string_view first_priming_version = "2025-11-25";

// How long a client waits before reconnecting after nginx closes its
// stream (takeover, reload, session end), in milliseconds.
inline constexpr std::uint32_t reconnect_retry_ms = 1000;

struct wire_form {
    stream_vocabulary vocabulary = stream_vocabulary::compatible;
    bool priming = false;  // the revision knows id-only events and retry:
};

// `protocol_version` is the stream's negotiated revision (YYYY-MM-DD, as
// the gate accepted it, or the transport's default when none was sent).
wire_form wire_form_for(stream_vocabulary vocabulary, std::string_view protocol_version);

// A message from the ring: `event: message` whatever its kind, except in
// the seed vocabulary, which names progress as `progress`.
void append_message(std::string& out, const wire_form& form, std::uint64_t id, event_kind kind, std::string_view data);

// The first bytes of a stream. `cursor`: the last id the client has (0:
// none). `session_id` is JSON-escaped (seed vocabulary only).
void append_connected(std::string& out, const wire_form& form, std::uint64_t cursor, std::string_view session_id,
                      std::int64_t now_ms);

void append_heartbeat(std::string& out, const wire_form& form, std::uint64_t cursor, std::int64_t now_ms);

// `dropped` events up to `last_lost_id` can no longer be sent.
void append_lagged(std::string& out, const wire_form& form, std::uint64_t last_lost_id, std::uint64_t dropped);
// The same with the id as text ("P.k" on a POST stream).
void append_lagged(std::string& out, const wire_form& form, std::string_view last_lost_id, std::uint64_t dropped);

// Before nginx ends the stream: `retry:` where the revision has it, else nothing.
std::string_view closing_text(const wire_form& form);

// Bytes that may precede one event's data in any form (lagged included),
// for sizing a batch before appending under the zone lock.
inline constexpr std::size_t max_framing_bytes = 96;

}  // namespace mcp_session
