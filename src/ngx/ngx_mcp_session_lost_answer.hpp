// "The backend lost the session": a live session's backend answer that
// says the session is unknown there ends it at the edge, and the client
// gets nginx's own 404 re-initialize answer instead of the backend's.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

namespace mcp_ngx {

struct request_state;

// Why a session ended on the backend side; each has its zone counter.
enum class session_loss_cause {
    backend_lost,  // the backend answered that it does not know the session (sessions_backend_lost)
    replica_gone,  // its pinned upstream server is gone (sessions_replica_lost)
};

// Header filter, main request, backend answer to a request that named a
// live session: a 400 or 404 JSON answer small enough to judge
// (Content-Length unknown or at most answer_body_limit, not compressed,
// not HEAD) is held. True: the caller must return NGX_OK without calling
// its next header filter; its body filter hands every call to
// lost_answer_body, which later sends either these headers unchanged or
// the 404.
bool hold_if_session_may_be_lost(ngx_http_request_t* r, request_state* state);

// True once hold_if_session_may_be_lost held an answer or
// answer_session_gone replaced one: the body filter must then call
// lost_answer_body for every call, `in` empty or not.
bool lost_answer_engaged(const request_state* state);

// True when the client got nginx's 404 in place of the answer (counted
// as nginx's own answer in the traffic figures).
bool lost_answer_replaced(const request_state* state);

// Body filter side. A held answer's bytes are copied (up to
// answer_body_limit) and consumed until last_buf; then the session is
// either lost (removed, counted, headers rewritten, the 404 body sent) or
// not (the original headers and bytes sent unchanged). A longer body, or
// one in a file, gives up: the original headers, the copied bytes and the
// rest go on untouched. For an answer_session_gone answer, whatever body
// comes (nginx's error page) is swallowed and the 404 body is sent at its
// last_buf. Returns what the next filters returned.
ngx_int_t lost_answer_body(ngx_http_request_t* r, request_state* state, ngx_chain_t* in,
                           ngx_http_output_header_filter_pt next_header, ngx_http_output_body_filter_pt next_body);

// For an answer already known to mean the session is gone (the pinned
// upstream server is down and nginx generated a 502/504 for it), called
// from this module's header filter of the main request instead of its
// next header filter, with state->status == valid and state->key set:
// removes the session from the zone (counted in `cause`'s counter),
// rewrites r->headers_out into nginx's 404 re-initialize answer
// (application/json, session_not_found_body(state->id, state->request_id),
// no Mcp-Session-Id, ETag, Last-Modified, Content-Encoding), calls
// `next_header` and returns what it returned: the header filter returns
// that. The body filter (ngx_mcp_session_filter.cpp, which checks
// lost_answer_engaged) then swallows the body nginx sends for its error
// page and sends the 404 body with its last_buf. NGX_ERROR when out of
// memory (nothing sent). Never call it twice for a request, nor after the
// headers went out.
ngx_int_t answer_session_gone(ngx_http_request_t* r, request_state* state, session_loss_cause cause,
                              ngx_http_output_header_filter_pt next_header);

}  // namespace mcp_ngx
