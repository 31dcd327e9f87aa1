// JSON-RPC error envelopes that nginx writes itself. SDKs parse these the
// same way as a backend's transport errors.
#pragma once

#include <string>
#include <string_view>

namespace mcp_session {

// How much of an untrusted presented id is echoed back (bytes, before
// escaping); longer values are cut and marked with "...".
inline constexpr std::size_t max_echoed_id_length = 128;

inline constexpr int session_not_found_code = -32001;  // the SDK's "Session not found"
inline constexpr int transport_error_code = -32000;

// Body of the 404 for an unknown, expired or empty Mcp-Session-Id. The
// presented id is capped, JSON-escaped and invalid UTF-8 replaced.
// `request_id` is the JSON text of the request's JSON-RPC id when nginx
// read the body (message_facts::id), else null.
std::string session_not_found_body(std::string_view presented_id, std::string_view request_id = "null");

// Body of any other error nginx answers itself (400, 403, 406, ...).
std::string transport_error_body(std::string_view message, std::string_view request_id = "null");

}  // namespace mcp_session
