// What nginx needs to know from a JSON-RPC request body, read once in the
// access phase: is it an initialize, which id to echo in our errors, and
// which revision its _meta declares. Malformed bodies are the backend's
// business: they are passed on untouched.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_session {

// Deeper bodies are not inspected (and pass to the backend untouched), so
// no parse or destruction can recurse without bound.
inline constexpr std::size_t max_inspected_depth = 64;

struct message_facts {
    bool json = false;        // a JSON object, or a batch (array) of them
    bool initialize = false;  // some message's method is "initialize"
    std::string id = "null";  // JSON text of the first message's id, for our error bodies
    std::optional<std::string> meta_version;  // params._meta["io.modelcontextprotocol/protocolVersion"]
    bool decided = true;      // false: the prefix ended before the facts were known
};

message_facts inspect_message_body(std::string_view body);

// Sessionless bodies are inspected only this far.
inline constexpr std::size_t max_inspected_bytes = 64 * 1024;

// The facts of a body's first bytes; `complete` says the prefix is the
// whole body.
message_facts inspect_message_body(std::string_view prefix, bool complete);

// Deeper published events are refused: serialising (and freeing) a JSON
// value recurses once per level, and a worker's stack is finite. serde_json,
// the seed's parser, stops at the same depth.
inline constexpr std::size_t max_published_depth = 128;

// A published event's payload: the body re-serialised compactly (so no
// line break reaches the SSE framing), or nothing when the body is not one
// JSON object nested at most max_published_depth levels.
std::optional<std::string> compact_published_message(std::string_view body);

// A keyed digest of a principal or tenant value: shared memory holds this,
// never the raw credential.
std::uint64_t binding_digest(std::string_view value, std::uint64_t key);

}  // namespace mcp_session
