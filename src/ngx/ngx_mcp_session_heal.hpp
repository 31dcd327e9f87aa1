// mcp_session_heal (issue mode): a session whose backend lost it, or
// whose pinned replica is gone, gets a new backend session without the
// client noticing. nginx replays the session's kept initialize and
// notifications/initialized to a live server, maps the client's id to
// the new backend id, and sends the client's request there once.
//
// Each step is the same request run again through its location (an
// internal redirect, as error_page does), with its body and its
// Mcp-Session-Id header swapped, so every nginx feature of the location
// (balancing, proxy_next_upstream, timeouts, access rules) applies to
// the steps as to the client's own request. The answers to the first two
// steps never reach the client.
#pragma once

#include "ngx_mcp_session_bridge.hpp"
#include "ngx_mcp_session_lost_answer.hpp"

#include <cstddef>

namespace mcp_ngx {

struct request_state;

// The largest initialize body kept per session (the SDK clients send a
// few hundred bytes); a longer one leaves the session unhealable.
inline constexpr std::size_t max_kept_initialize = 4096;

// Starts healing this request's session when the location allows it:
// mcp_session_heal on, issue mode, a POST whose body nginx still holds
// (proxy_request_buffering on), a live session with a kept initialize,
// and no heal earlier in this request. Called where the client would
// otherwise get nginx's 404: the answer at hand (the backend's lost-
// session answer, or nginx's error page for a gone replica) is then
// swallowed, and the caller returns NGX_OK. False: go on as without
// healing.
bool start_heal(ngx_http_request_t* r, request_state* state, session_loss_cause cause);

// True while the heal owns the request's answers (the one swallowed and
// those of its own steps): the filters hand them to heal_header_filter
// and heal_body_filter instead of doing their own work.
bool heal_owns_answer(const request_state* state);

ngx_int_t heal_header_filter(ngx_http_request_t* r, request_state* state,
                             ngx_http_output_header_filter_pt next_header);
ngx_int_t heal_body_filter(ngx_http_request_t* r, request_state* state, ngx_chain_t* in);

// Postconfiguration: indexes the variables that describe the request's
// body or session header, whose cached values each step invalidates
// (proxy_set_header Content-Length $content_length must see the step's body).
ngx_int_t register_heal_variables(ngx_conf_t* cf) noexcept;

}  // namespace mcp_ngx
