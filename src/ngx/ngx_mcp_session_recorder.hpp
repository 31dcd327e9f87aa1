// The backend's SSE answer to a session's POST, relayed to the client with
// nginx's event ids and recorded in the session's ring, so that a client
// whose connection drops resumes it with GET + Last-Event-ID
// (mcp_session/sse_relay.hpp has the id scheme, the stream's GET side).
#pragma once

#include "ngx_mcp_session_request.hpp"

namespace mcp_ngx {

// Header filter: when this is a backend's 200 text/event-stream answer to
// a POST of a live session in a `mcp_session_stream on` location, the
// recording starts (unless the session has no room for it: the answer is
// then passed on as it is). Throws std::bad_alloc.
void start_post_recording(ngx_http_request_t* r, request_state* state);

// Body filter of a recorded answer: passes the relayed bytes to `next`
// instead of `in`.
ngx_int_t relay_post_stream(ngx_http_request_t* r, request_state* state, ngx_chain_t* in,
                            ngx_http_output_body_filter_pt next);

}  // namespace mcp_ngx
