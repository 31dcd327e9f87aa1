// ngx_mcp_session: MCP session validation at the edge. This file only
// wires the module into nginx; the behaviour lives in src/.
#include "src/ngx/ngx_mcp_session_answer_watch.hpp"
#include "src/ngx/ngx_mcp_session_cluster.hpp"
#include "src/ngx/ngx_mcp_session_conf.hpp"
#include "src/ngx/ngx_mcp_session_doorbell.hpp"
#include "src/ngx/ngx_mcp_session_heal.hpp"
#include "src/ngx/ngx_mcp_session_phases.hpp"
#include "src/ngx/ngx_mcp_session_state.hpp"
#include "src/ngx/ngx_mcp_session_sticky.hpp"
#include "src/ngx/ngx_mcp_session_traffic.hpp"

namespace {

using namespace mcp_ngx;

ngx_int_t preconfiguration(ngx_conf_t* cf) noexcept { return add_variables(cf); }

ngx_int_t postconfiguration(ngx_conf_t* cf) noexcept
{
    if (check_zone_references(cf) != NGX_OK || check_sticky_upstreams(cf) != NGX_OK ||
        register_heal_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }
    // Precontent, not access: allow/deny, auth_basic and auth_request (with
    // satisfy any or all) have decided, and auth_request_set has run, before
    // any session is looked at, touched, made or bound. Pushed last, it runs
    // first in the phase, before try_files and mirror.
    auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    auto* handler = static_cast<ngx_http_handler_pt*>(ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers));
    if (handler == nullptr) {
        return NGX_ERROR;
    }
    *handler = session_handler;
    auto* logger = static_cast<ngx_http_handler_pt*>(ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers));
    if (logger == nullptr) {
        return NGX_ERROR;
    }
    *logger = record_traffic;
    // The answer watch goes in first, so it runs after the session filters
    // and reads what the client gets: not a backend answer nginx replaced.
    install_answer_watch();
    install_filters();
    return prepare_state_saves(cf);
}

// Master, every cycle, before workers fork: the doorbells the zones'
// init made, and the sessions of zones made afresh from their state files.
ngx_int_t init_module(ngx_cycle_t* cycle) noexcept
{
    if (ngx_test_config) {
        return NGX_OK;  // nginx -t opens no descriptors and leaves state files alone
    }
    // Nothing here may fail: nginx exits on an init_module error, even on a
    // reload. What can fail was done by the zones' init (ngx_mcp_session_cycle.cpp).
    commit_doorbells(cycle);
    restore_state(cycle);
    apply_tracked_tools(cycle);
    return NGX_OK;
}

ngx_int_t init_process(ngx_cycle_t* cycle) noexcept
{
    if (ngx_process == NGX_PROCESS_HELPER) {
        // The cache manager and loader serve no requests, and inherit
        // ngx_worker 0: they must not take worker 0's doorbell or inbox.
        return NGX_OK;
    }
    if (start_id_generator() != NGX_OK || start_sweep_timers(cycle) != NGX_OK || start_state_timers(cycle) != NGX_OK ||
        start_clusters(cycle) != NGX_OK) {
        return NGX_ERROR;
    }
    return start_stream_delivery(cycle);
}

// A worker (or single process) leaving: its state save in progress ends,
// and its links to Redis close.
void exit_process(ngx_cycle_t* cycle) noexcept
{
    finish_state_saves_at_exit(cycle);
    stop_clusters(cycle);
}

// Master (or single process) on quit or stop, after the workers are gone.
void exit_master(ngx_cycle_t* cycle) noexcept { save_state_at_exit(cycle); }

ngx_command_t commands[] = {
    {ngx_string("mcp_session_zone"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, set_zone_directive,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("mcp_session_tracked_tools"), NGX_HTTP_MAIN_CONF | NGX_CONF_2MORE, set_tracked_tools_directive,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("mcp_session"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     set_session_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("mcp_session_stream"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, stream), nullptr},
    {ngx_string("mcp_session_heartbeat"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     set_heartbeat_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("mcp_session_stream_events"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, ngx_conf_set_enum_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, stream_events), stream_vocabularies},
    {ngx_string("mcp_session_event_max_size"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, ngx_conf_set_size_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, event_max_size), nullptr},
    {ngx_string("mcp_session_mode"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_enum_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, mode), session_modes},
    {ngx_string("mcp_session_allowed_origins"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE, set_origins_directive,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, allowed_origins), nullptr},
    {ngx_string("mcp_session_protocol_versions"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE, set_versions_directive,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, protocol_versions), nullptr},
    {ngx_string("mcp_session_principal"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_http_set_complex_value_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, principal), nullptr},
    {ngx_string("mcp_session_tenant"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_http_set_complex_value_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, tenant), nullptr},
    {ngx_string("mcp_session_distinct_binding_errors"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG, ngx_conf_set_flag_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, distinct_binding_errors), nullptr},
    {ngx_string("mcp_session_inspect_body"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG, ngx_conf_set_flag_slot,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, inspect_body), nullptr},
    {ngx_string("mcp_session_cors"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, cors), nullptr},
    {ngx_string("mcp_session_lost_session_400"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE, set_lost_session_400_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("mcp_session_stream_grace"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_msec_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, stream_grace), nullptr},
    {ngx_string("mcp_session_heal"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(loc_conf, heal), nullptr},
    {ngx_string("mcp_session_publish"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_publish_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("mcp_session_status"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_status_directive,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("mcp_session_sticky"), NGX_HTTP_UPS_CONF | NGX_CONF_NOARGS, set_sticky_directive,
     NGX_HTTP_SRV_CONF_OFFSET, 0, nullptr},
    ngx_null_command,
};

ngx_http_module_t module_ctx = {
    preconfiguration,  postconfiguration,
    create_main_conf,  nullptr,  // init main conf
    create_srv_conf,   nullptr,  // server conf: upstream blocks' mcp_session_sticky
    create_loc_conf,   merge_loc_conf,
};

}  // namespace

extern "C" {

ngx_module_t ngx_mcp_session_module = {
    NGX_MODULE_V1,
    &module_ctx,
    commands,
    NGX_HTTP_MODULE,
    nullptr,       // init master
    init_module,   // init module
    init_process,  // init process
    nullptr,       // init thread
    nullptr,       // exit thread
    exit_process,  // exit process
    exit_master,   // exit master
    NGX_MODULE_V1_PADDING,
};

}  // extern "C"
