// Events on a session's SSE stream: kinds, ids and the wire format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_session {

enum class event_kind : std::uint8_t { init, message, progress, lagged, heartbeat };

// The SSE `event:` name of each kind.
std::string_view kind_name(event_kind kind);

// Kinds a publisher may choose (`?event=`); the others nginx makes itself.
std::optional<event_kind> parse_published_kind(std::string_view name);

inline constexpr std::size_t default_ring_capacity = 256;
inline constexpr std::size_t default_event_max_size = 64 * 1024;

// Last-Event-ID: a decimal event id, 0 meaning "never seen anything".
// Empty or whitespace is 0 too (EventSource sends none then); anything
// else that is not a plain non-negative decimal fitting 64 bits is
// malformed (nullopt) and answered 400.
std::optional<std::uint64_t> parse_last_event_id(std::string_view raw);

// Appends one event: `id:`, `event:`, one `data:` line per payload line,
// blank line. Line breaks inside `data` cannot end the event early.
void append_sse_event(std::string& out, std::uint64_t id, event_kind kind, std::string_view data);
// The same with the id as text ("P.k" on a POST stream).
void append_sse_event(std::string& out, std::string_view id, event_kind kind, std::string_view data);

}  // namespace mcp_session
