// What nginx concludes from a backend's answer to a request that named a
// live session.
#pragma once

#include <cstddef>
#include <string_view>

namespace mcp_session {

// A 404's body is inspected only this far: a session error is a short
// JSON-RPC envelope, and the filter keeps at most this many bytes.
inline constexpr std::size_t answer_body_limit = 4096;

// True when `body` is one JSON-RPC error envelope ({"jsonrpc":"2.0",
// "error":{"code":<integer>,...},...}), the form every MCP SDK answers an
// unknown session with. A 404 page for some other path under the location
// (HTML, plain text, other JSON) is not: it must not end the session.
bool is_jsonrpc_error_body(std::string_view body);

}  // namespace mcp_session
