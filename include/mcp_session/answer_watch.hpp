// What a backend's answer to a POST reports as failures, read from a
// bounded look at its body: JSON-RPC errors by code class and tools/call
// results with "isError": true (see error_class in traffic.hpp). The body
// itself is never changed; only a small prefix is ever kept.
#pragma once

#include "mcp_session/traffic.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mcp_session {

// A JSON body (or one SSE event's data) is looked at this far: an error
// envelope is short, and a tool result's isError beyond it goes uncounted.
inline constexpr std::size_t answer_watch_prefix = 16 * 1024;

// An SSE answer is followed this far, then no longer watched: the
// response to a POST is normally its last event, after a few notifications.
inline constexpr std::size_t answer_watch_stream_limit = 1024 * 1024;

using error_counts = std::array<std::uint32_t, error_classes>;

// The failures in `json`, a JSON-RPC message or batch (array), possibly
// cut short: each message object with an "error" object counts once, by
// its integer "code" (no readable code: other); with `tools_call`, each
// with "result":{"isError":true} counts as tool_error. A message with a
// "method" member (a request or notification) counts nothing, nor does
// anything that is not such JSON.
error_counts classify_answer(std::string_view json, bool tools_call);

// Follows one answer's body, fed in pieces split anywhere, and adds what
// classify_answer finds in it (for SSE: in each event's data) to counts().
class answer_watch {
public:
    enum class form : std::uint8_t { json, event_stream };

    answer_watch(form f, bool tools_call) : form_(f), tools_call_(tools_call) {}

    // `last`: the body ends with this piece.
    void feed(std::string_view piece, bool last);

    // For a caller that parses the SSE itself (the POST-stream relay), in
    // place of feed(): a piece of the current event's data (its data
    // lines joined by LF; an empty piece still says the event has data),
    // then the event's end. The stream limit and prefix apply as to feed().
    void event_data(std::string_view piece);
    void end_event();
    // The current event ends and is known to count nothing (its message
    // names a method): it is not parsed.
    void drop_event();

    // Nothing more will be counted: the caller may stop feeding.
    bool done() const { return done_; }

    const error_counts& counts() const { return counts_; }

private:
    void add(std::string_view json);
    void feed_json(std::string_view piece, bool last);
    void feed_stream(std::string_view piece);
    void end_line();
    void dispatch_event();

    form form_;
    bool tools_call_;
    bool done_ = false;
    error_counts counts_{};
    std::string kept_;  // JSON: the body's prefix; SSE: the event's data so far (both capped)
    std::size_t seen_ = 0;  // SSE bytes followed
    // SSE line state: the field name so far (capped), whether it is past
    // its ':', and whether this line's value goes to the data.
    std::string field_;
    bool in_value_ = false;
    bool data_line_ = false;
    bool skip_space_ = false;
    bool after_cr_ = false;
    bool event_has_data_ = false;
};

}  // namespace mcp_session
