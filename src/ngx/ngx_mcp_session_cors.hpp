// CORS headers on the answers nginx makes itself (ngx_mcp_session_cors.cpp).
#pragma once

#include "ngx_mcp_session_bridge.hpp"

namespace mcp_ngx {

// Header filter, main request: for a location with mcp_session and
// mcp_session_cors on, an answer not from the backend, and one allowed
// Origin, adds Access-Control-Allow-Origin (that origin), Vary: Origin and
// Access-Control-Expose-Headers. Throws std::bad_alloc.
void add_cors_to_own_answer(ngx_http_request_t* r);

}  // namespace mcp_ngx
