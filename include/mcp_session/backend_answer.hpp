// What nginx concludes from a backend's answer to a request that named a
// live session.
#pragma once

#include <cstddef>
#include <string_view>

namespace mcp_session {

// A 400's or 404's body is inspected only this far: a session error is a
// short JSON-RPC envelope, and the filter keeps at most this many bytes.
inline constexpr std::size_t answer_body_limit = 4096;

// True when `body` is one JSON-RPC error envelope ({"jsonrpc":"2.0",
// "error":{"code":<integer>,...},...}), the form every MCP SDK answers an
// unknown session with. A 404 page for some other path under the location
// (HTML, plain text, other JSON) is not: it must not end the session.
bool is_jsonrpc_error_body(std::string_view body);

// Which 400 answers say "this session is unknown here"
// (mcp_session_lost_session_400). Phrases point into configuration memory.
inline constexpr std::size_t max_lost_session_phrases = 8;
inline constexpr std::size_t max_lost_session_phrase_length = 128;

struct lost_session_rules {
    bool default_rule = true;   // the built-in recognition (see classify_lost_session)
    std::size_t phrase_count = 0;
    std::string_view phrases[max_lost_session_phrases];  // more messages, matched case-insensitively
};

enum class session_loss_verdict { kept, lost };

// The backend no longer knows the session when it answers
// - 404 with a JSON-RPC error envelope (any code or message), or
// - 400 with a JSON-RPC error envelope whose error.message, compared
//   case-insensitively, matches the rules: by default it contains
//   "session" and one of "no valid", "not found", "unknown", "invalid",
//   "expired", "missing", "no such", "does not exist", "terminated"
//   (the SDKs' and server-everything's "Bad Request: No valid session ID
//   provided", "Session not found", "Invalid or expired session ID"), or
//   "server not initialized" (the TypeScript SDK's single transport after
//   a restart) -- unless error.code is -32700, -32601 or -32602 (the
//   backend parsed the message and judged it) -- or it contains one of
//   the configured phrases.
// Anything else (other statuses, bodies over answer_body_limit, a 400
// about parameters or protocol versions) keeps the session.
session_loss_verdict classify_lost_session(int status, std::string_view body, const lost_session_rules& rules);

}  // namespace mcp_session
