// mcp_session_sticky: an upstream balancer that sends every request of a
// session to the server that created it. New sessions are balanced by
// round robin (weights, backup, max_fails/fail_timeout, down); the server
// that answered is recorded in the session's zone record by its address,
// so the pin holds from every worker, across reloads that reorder or add
// servers, and across restarts with state=.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include <string_view>

namespace mcp_ngx {

struct request_state;

// Per upstream block (the module's srv conf, made for every server block too).
struct upstream_conf {
    bool sticky;        // mcp_session_sticky given in this upstream block
    bool initialized;   // its balancer was set up (no later method replaced it)
    ngx_http_upstream_srv_conf_t* upstream;
    ngx_http_upstream_init_pt original_init_upstream;
    ngx_http_upstream_init_peer_pt original_init_peer;
};

void* create_srv_conf(ngx_conf_t* cf) noexcept;
char* set_sticky_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;

// nginx -t: a location that proxies to a sticky upstream must handle
// sessions (there would be nothing to pin by), and no later balancing
// method may have replaced the sticky one. Called from merge_loc_conf.
char* check_sticky_location(ngx_conf_t* cf, bool handles_sessions) noexcept;
ngx_int_t check_sticky_upstreams(ngx_conf_t* cf) noexcept;

// The server that answered this request, when its upstream is sticky and
// the answer came over a connection to it; empty otherwise.
std::string_view sticky_server_of(ngx_http_request_t* r);

}  // namespace mcp_ngx
