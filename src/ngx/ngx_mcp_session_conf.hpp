// Configuration structures shared by the glue files.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include "mcp_session/backend_answer.hpp"
#include "mcp_session/expiry.hpp"
#include "mcp_session/sweep.hpp"

extern "C" ngx_module_t ngx_mcp_session_module;

namespace mcp_ngx {

struct zone_shared;
struct state_files;
struct redis_settings;
struct cluster_node;

// One `mcp_session_zone`, per configuration cycle. `shared` and `pool`
// point into the shared memory and survive reloads; the rest is rebuilt
// from nginx.conf every cycle.
struct zone_conf {
    ngx_shm_zone_t* shm_zone;
    ngx_str_t name;
    mcp_session::expiry_policy policy;
    mcp_session::sweep_schedule sweep;
    mcp_session::expiry_horizon expiry_horizon;  // per process: what its last sweep left leading
    std::uint32_t ring_capacity;  // events kept per session (buffer=)
    zone_shared* shared;
    ngx_slab_pool_t* pool;
    ngx_event_t sweep_timer;  // per worker, armed in init_process
    ngx_str_t state_path;     // state=; empty: sessions live only in memory
    mcp_session::sweep_schedule state_saves;  // state_interval=
    ngx_event_t state_timer;  // per worker; one worker saves per interval
    state_files* state;       // the state directory and key, opened by the master each cycle
    bool made_afresh;         // this cycle created the shared memory (not a reload)
    std::uint64_t cycle;      // this cycle's number in the zone (zone_shared::cycles)
    ngx_cycle_t* conf_cycle;  // the cycle this configuration belongs to
    ngx_array_t* tracked_tools;  // ngx_str_t, mcp_session_tracked_tools; nullptr: the first names seen
    redis_settings* redis;    // redis=; nullptr: the zone is this node's alone
    cluster_node* cluster;    // per worker, with redis= (ngx_mcp_session_cluster.cpp)
};

// Where a location named a zone, so an undeclared one can be reported
// with its file:line once the whole configuration has been read.
struct zone_reference {
    ngx_shm_zone_t* shm_zone;
    ngx_str_t name;
    ngx_str_t file;
    ngx_uint_t line;
};

// One mcp_session_tracked_tools, until the zone it names is known.
struct tracked_tools_conf {
    ngx_shm_zone_t* shm_zone;
    ngx_array_t* names;  // ngx_str_t
};

struct main_conf {
    ngx_array_t zones;          // zone_conf*
    ngx_array_t references;     // zone_reference
    ngx_array_t tracked_tools;  // tracked_tools_conf
    ngx_array_t heal_variables; // ngx_int_t: indexes mcp_session_heal invalidates between its steps
};

// Every zone the cycle declares (none without an http block). `Cycle` is
// ngx_cycle_t or the volatile ngx_cycle global.
template <typename Cycle, typename Visit>
void for_each_zone(Cycle* cycle, Visit visit)
{
    auto* mcf = static_cast<main_conf*>(ngx_http_cycle_get_module_main_conf(cycle, ngx_mcp_session_module));
    if (mcf == nullptr) {
        return;
    }
    auto** zones = static_cast<zone_conf**>(mcf->zones.elts);
    for (ngx_uint_t i = 0; i < mcf->zones.nelts; ++i) {
        visit(*zones[i]);
    }
}

enum session_mode : ngx_uint_t { mode_learn = 0, mode_issue = 1 };

// Per-location protocol rules, built once at configuration time.
struct location_policy;

struct loc_conf {
    ngx_shm_zone_t* zone;          // nullptr: sessions not handled here
    ngx_shm_zone_t* publish_zone;  // set: this location is a publish endpoint
    ngx_shm_zone_t* status_zone;   // set: this location is a status endpoint
    ngx_flag_t stream;             // nginx serves GET streams from the ring
    ngx_msec_t heartbeat;          // 0: off
    ngx_uint_t stream_events;      // mcp_session::stream_vocabulary
    size_t event_max_size;
    ngx_msec_t stream_grace;       // the backend's own stream is held this long after the last client stream closed
    ngx_uint_t mode;                       // session_mode
    ngx_array_t* allowed_origins;          // ngx_str_t; "any" allowed
    ngx_array_t* protocol_versions;        // ngx_str_t
    ngx_http_complex_value_t* principal;   // mcp_session_principal
    ngx_http_complex_value_t* tenant;      // mcp_session_tenant
    ngx_flag_t distinct_binding_errors;    // 401/409 for a mismatch instead of 404
    ngx_flag_t inspect_body;               // read POST bodies' first bytes for $mcp_method etc.
    ngx_flag_t cors;                       // CORS headers on nginx's own answers (mcp_session_cors)
    location_policy* policy;               // derived in merge
    mcp_session::lost_session_rules lost_session_400;  // mcp_session_lost_session_400
    ngx_flag_t lost_session_400_set;       // NGX_CONF_UNSET until set here or merged
    ngx_flag_t heal;                       // mcp_session_heal: lost sessions get a new backend session
};

inline zone_conf* zone_of(const loc_conf* lcf)
{
    return lcf->zone == nullptr ? nullptr : static_cast<zone_conf*>(lcf->zone->data);
}

// Directive handlers and conf callbacks (ngx_mcp_session_conf.cpp).
char* set_zone_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_session_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_publish_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_status_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_heartbeat_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_origins_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_versions_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_tracked_tools_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* set_lost_session_400_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
extern ngx_conf_enum_t session_modes[];
extern ngx_conf_enum_t stream_vocabularies[];
void* create_main_conf(ngx_conf_t* cf) noexcept;
void* create_loc_conf(ngx_conf_t* cf) noexcept;
char* merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) noexcept;
ngx_int_t check_zone_references(ngx_conf_t* cf) noexcept;

}  // namespace mcp_ngx
