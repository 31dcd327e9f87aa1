// Several nginx nodes sharing sessions through Redis (mcp_session_zone
// ... redis=). The zone stays each node's fast local layer; Redis holds
// the truth every node can read: one hash per session, kept until its
// idle or lifetime deadline (a Redis TTL), a tombstone for a session that
// ended, and an "ended" channel every node listens on. Per worker and
// zone: one command link and one subscriber link (ngx_mcp_session_redis_link).
#pragma once

#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_request.hpp"

#include "mcp_session/session_key.hpp"

namespace mcp_ngx {

// init_process: connects every zone with redis=; exit_process: lets go.
ngx_int_t start_clusters(ngx_cycle_t* cycle) noexcept;
void stop_clusters(ngx_cycle_t* cycle) noexcept;

// The gate found no live local copy: asks Redis while the request waits
// (the phases resume when the answer came, with state->shared set).
// False when Redis cannot be asked now: the caller answers 503.
bool look_up_shared(ngx_http_request_t* r, request_state* state, const mcp_session::session_key& key);

// A local copy was used (its access was written): Redis learns it in
// the next batch (once a second), so idle expiry holds cluster-wide.
void note_shared_use(zone_conf& zone, const mcp_session::session_key& key);

// Made or changed here (created, backend id, pin, heal): written to Redis now.
void share_session(zone_conf& zone, const mcp_session::session_key& key);

// Ended here (DELETE, lost): ended on every node.
void end_shared_session(zone_conf& zone, const mcp_session::session_key& key);

// Whether this worker's link to Redis for the zone is ready (status).
bool shared_link_up(const zone_conf& zone);

}  // namespace mcp_ngx
