// CORS headers on the answers the module makes itself (ngx_mcp_session_cors.cpp).
#pragma once

#include "ngx_mcp_session_bridge.hpp"

namespace mcp_ngx {

struct request_state;

// Header filter, main request: for the module's own answer (the gate's
// refusals and 404s, the stream) in a location with mcp_session_cors on,
// and one allowed Origin, adds Access-Control-Allow-Origin (that origin), Vary: Origin and
// Access-Control-Expose-Headers. Throws std::bad_alloc.
void add_cors_to_own_answer(ngx_http_request_t* r, const request_state* state);

// The same for an answer nginx put in place of the upstream's (the 404 for
// a session its backend or replica lost), unless the backend's own
// Access-Control-Allow-Origin is still there. Throws std::bad_alloc.
void add_cors_to_replaced_answer(ngx_http_request_t* r);

}  // namespace mcp_ngx
