// What nginx needs to know from a JSON-RPC request body, read once in the
// access phase: is it an initialize, which id to echo in our errors, and
// which revision its _meta declares. Malformed bodies are the backend's
// business: they are passed on untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_session {

// Deeper bodies are not inspected (and pass to the backend untouched), so
// no parse or destruction can recurse without bound.
inline constexpr std::size_t max_inspected_depth = 64;

// Only this much of a body is looked at: an initialize is a small message,
// and a large body must cost the event loop a bounded amount of work.
inline constexpr std::size_t max_inspected_bytes = 64 * 1024;

// An id whose JSON text is longer is not echoed (our errors then say null).
inline constexpr std::size_t max_inspected_id_length = 256;

// A declared revision longer than this is ignored: none is that long.
inline constexpr std::size_t max_meta_version_length = 64;

struct message_facts {
    bool json = false;        // a JSON object, or a batch (array) of them
    bool initialize = false;  // some message's method is "initialize"
    std::string id = "null";  // JSON text of the message's id, for our error bodies (null for a batch)
    std::optional<std::string> meta_version;  // params._meta["io.modelcontextprotocol/protocolVersion"]
    // For logs, maps and metrics (see log_label): the message's method
    // ("batch" for a batch), and what it acts on: params.name of tools/call
    // and prompts/get, params.uri of resources/read. Empty when absent or
    // longer than max_method_length / max_target_length.
    std::string method;
    std::string target;
    // false: the body is longer than the inspected prefix and the prefix
    // did not settle it (it is a clean start of an object or batch). Then
    // `json` says only that the prefix is such a start, and the other facts
    // are what the prefix holds: the rest was never read.
    bool decided = true;
};

// Inspects `prefix`, the first bytes of a body (at most
// max_inspected_bytes of them are read); `complete`: the prefix is the
// whole body. A complete body gives exactly the facts a full parse would
// (last duplicate key wins, as in a DOM); invalid JSON, invalid UTF-8, lone
// surrogates, a raw NUL byte, or nesting deeper than max_inspected_depth
// make it not JSON. A streaming (SAX) parse: no document is built, and the
// memory one inspection uses is bounded by a constant, about
// 3 x max_inspected_bytes (the parser's token buffers and the copied id
// and revision), whatever the size of the body.
message_facts inspect_message_body(std::string_view prefix, bool complete);

inline constexpr std::size_t max_method_length = 128;
inline constexpr std::size_t max_target_length = 256;

// An untrusted string made safe for a log line or a header value: empty
// when longer than `limit`, control bytes (CR, LF, NUL, ...) replaced by '?'.
std::string log_label(std::string_view text, std::size_t limit);

// The whole body in memory: inspects its first max_inspected_bytes.
message_facts inspect_message_body(std::string_view body);

// Deeper published events are refused: serialising (and freeing) a JSON
// value recurses once per level, and a worker's stack is finite. serde_json,
// the seed's parser, stops at the same depth.
inline constexpr std::size_t max_published_depth = 128;

// Why a publish body is refused.
enum class publish_refusal {
    none,
    not_json,      // not one JSON object nested at most max_published_depth levels
    not_jsonrpc,   // no "jsonrpc":"2.0", or no string "method"
    response,      // a JSON-RPC response: it belongs to the stream of its request
};

struct published_message {
    publish_refusal refusal = publish_refusal::none;
    std::string payload;  // when accepted: the body re-serialised compactly (no line break reaches SSE)
};

// A publish body: a JSON-RPC request or notification (a client can do
// nothing with anything else on its stream: the TypeScript SDK reports an
// unknown message id for a response, a validation error for other JSON).
published_message prepare_published_message(std::string_view body);

// The 400 message for a refusal other than none.
std::string_view publish_refusal_message(publish_refusal refusal);

// A keyed digest of a principal or tenant value: shared memory holds this,
// never the raw credential.
std::uint64_t binding_digest(std::string_view value, std::uint64_t key);

}  // namespace mcp_session
