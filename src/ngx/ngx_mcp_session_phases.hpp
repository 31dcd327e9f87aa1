// The module's request-time entry points, registered in postconfiguration.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

namespace mcp_ngx {

struct zone_conf;

// Precontent phase, after every access module has decided: validates
// Mcp-Session-Id and binds sessions (ngx_mcp_session_gate.cpp).
ngx_int_t session_handler(ngx_http_request_t* r) noexcept;

// init_process: the worker's own session id generator (issue mode).
ngx_int_t start_id_generator() noexcept;

// Content handlers: nginx's own SSE stream for a session
// (ngx_mcp_session_stream.cpp) and the publish endpoint
// (ngx_mcp_session_publish.cpp).
ngx_int_t stream_handler(ngx_http_request_t* r) noexcept;
ngx_int_t publish_handler(ngx_http_request_t* r) noexcept;

// The status endpoint (ngx_mcp_session_status.cpp).
ngx_int_t status_handler(ngx_http_request_t* r) noexcept;

// Per-worker stream registry: wakes this worker's streams after a doorbell.
// Also takes the worker's number in each zone, releasing the streams of a
// crashed predecessor (see worker_tenant).
ngx_int_t start_stream_delivery(ngx_cycle_t* cycle) noexcept;

// The zone's shared-memory init, every cycle but nginx -t: the cycle's
// doorbells, its number in the zone, and every worker slot's inbox. A
// failure refuses the configuration (ngx_mcp_session_cycle.cpp).
ngx_int_t prepare_zone_for_cycle(zone_conf& zone) noexcept;

// Header and body filters: learn, end and forget sessions from backend
// answers; hide backend ids in issue mode (ngx_mcp_session_filter.cpp).
void install_filters() noexcept;

// $mcp_session_id, $mcp_session_status (ngx_mcp_session_variables.cpp).
ngx_int_t add_variables(ngx_conf_t* cf) noexcept;

// Per-worker sweep timers (ngx_mcp_session_sweep.cpp).
ngx_int_t start_sweep_timers(ngx_cycle_t* cycle) noexcept;

}  // namespace mcp_ngx
