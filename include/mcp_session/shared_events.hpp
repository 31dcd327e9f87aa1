// A session's events as several nginx nodes share them through Redis
// (redis=): a bounded Redis Stream per session, numbered by Redis so
// every node gives an event the same id, a channel that carries each new
// event to the nodes holding a stream of the session, and the listener
// hash that makes one stream per session cluster-wide. One message form
// serves as the stream entry's field and as the channel message, and it
// is decoded as strictly as a state file: Redis is shared with others.
#pragma once

#include "mcp_session/event.hpp"
#include "mcp_session/session_key.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_session {

// "<prefix>e:{<token>}", "<prefix>ev:{<token>}", "<prefix>l:{<token>}":
// the same hash tag as the session's record, so one shard holds them all.
std::string shared_events_key(std::string_view prefix, const session_key& key);
std::string shared_events_channel(std::string_view prefix, const session_key& key);
std::string shared_listener_key(std::string_view prefix, const session_key& key);
// The session a channel name of shared_events_channel belongs to.
std::optional<session_key> key_of_events_channel(std::string_view prefix, std::string_view channel);

// Ring slot flags an event carries between nodes (a POST stream's).
inline constexpr std::uint8_t shared_flag_framed = 1;    // payload: the event's field lines
inline constexpr std::uint8_t shared_flag_response = 2;  // carried its POST stream's response
inline constexpr std::uint8_t shared_flag_closed = 4;    // marker: the POST stream's answer ended
inline constexpr std::uint8_t shared_flags_known = 7;

struct shared_event {
    std::uint64_t id = 0;          // the cluster's number for it
    event_kind kind = event_kind::message;  // message, progress; init: a POST stream's marker
    std::uint64_t post_stream = 0;  // 0: the standalone stream
    std::uint32_t post_index = 0;   // k in its POST stream (closed marker: the next index)
    std::uint8_t flags = 0;
    std::string_view payload;
};

// What a node hands the numbering script: "<kind> <P> <k> <flags>\n<payload>".
// The script sends it on as "E<id> " followed by this.
std::string encode_shared_event_body(const shared_event& event);

// "L<listener>": a stream of the session opened somewhere (the newest wins).
inline constexpr std::size_t max_listener_name = 64;

struct shared_message {
    enum class type { event, listener, malformed } what = type::malformed;
    shared_event event;          // type::event; payload points into the text
    std::string_view listener;   // type::listener
};

shared_message decode_shared_message(std::string_view text);

// A stream entry's id as Redis gives it ("0-<id>"); 0 when it is not one of ours.
std::uint64_t shared_entry_id(std::string_view entry_id);

}  // namespace mcp_session
