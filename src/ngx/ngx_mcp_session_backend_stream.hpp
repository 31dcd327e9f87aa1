// The backend's own standalone stream of a session. With
// `mcp_session_stream on` nginx answers the client's GET itself, so the
// backend's GET stream (where an unmodified MCP server sends its logging,
// list_changed and resource notifications) would never be opened: nginx
// opens it instead, one per session across all workers, holds it while a
// client stream is open and for mcp_session_stream_grace after, and
// records its messages on the session's stream, where every client
// stream (on any worker, and after a reconnect) finds them.
#pragma once

#include "ngx_mcp_session_request.hpp"

namespace mcp_ngx {

// `r`, nginx's stream GET of the session of `state`, has opened: the
// backend's stream is held from now on (unless a worker holds it already,
// or the backend has none). Copies what its GETs need from `r`.
void hold_backend_stream(ngx_http_request_t* r, request_state* state) noexcept;

// Filters of the requests nginx makes to hold a backend's stream: their
// answer goes nowhere but the session's ring.
ngx_int_t backend_stream_header_filter(ngx_http_request_t* r, request_state* state) noexcept;
ngx_int_t backend_stream_body_filter(ngx_http_request_t* r, request_state* state, ngx_chain_t* in) noexcept;

// The worker is leaving (reload, quit): every held stream is closed and
// its claim given back, so a new worker holds it when a client returns.
void end_backend_streams() noexcept;

}  // namespace mcp_ngx
