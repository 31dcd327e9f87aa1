// A zone's MCP traffic counters in shared memory (see mcp_session/traffic.hpp).
// Updated with atomic adds from the log phase and the answer watch, never
// under the zone lock: recording a request costs no lock round trip.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include "mcp_session/answer_watch.hpp"
#include "mcp_session/traffic.hpp"

namespace mcp_ngx {

struct zone_conf;

struct shared_figures {
    ngx_atomic_t requests;
    ngx_atomic_t by_status_class[5];
    ngx_atomic_t latency[mcp_session::latency_buckets];
    ngx_atomic_t latency_sum_ms;
};

// A tool's slot, guarded by a sequence number: odd while its name is
// written (by a worker claiming a free slot, or by the master applying
// mcp_session_tracked_tools at a reload), even when stable. A slot is
// free when stable with name_size 0; its figures are zero while free.
struct shared_tool {
    ngx_atomic_t sequence;
    u_char name[mcp_session::max_tool_name];
    std::uint8_t name_size;
    shared_figures figures;
};

struct traffic_table {
    shared_figures methods[mcp_session::method_labels.size()];
    shared_tool tools[mcp_session::max_tracked_tools];
    shared_figures other_tools;
    ngx_atomic_t own_answers[static_cast<std::size_t>(mcp_session::own_answer::count_)];
    // 1: the configuration names the tools; workers never claim a slot.
    ngx_atomic_t tools_configured;
    ngx_atomic_t statuses[mcp_session::method_labels.size()][mcp_session::status_labels];
    ngx_atomic_t errors[mcp_session::method_labels.size()][mcp_session::error_classes];
};

// Log phase, main requests of mcp_session locations (ngx_mcp_session_traffic.cpp).
ngx_int_t record_traffic(ngx_http_request_t* r) noexcept;

// What the answer watch found in a backend's answer, by the request's method.
void record_answer_errors(zone_conf& zone, std::string_view method, const mcp_session::error_counts& counts);

// Master, every cycle but nginx -t, before the workers start: gives the
// zone's configured tool names their slots (keeping the counters of names
// that stay, freeing the slots of names gone), or with none configured
// lets workers name slots by first use again.
void apply_tracked_tools(ngx_cycle_t* cycle) noexcept;

// A copy for the status endpoint (plain loads: each counter is exact,
// the set is not one instant, as with any scrape).
mcp_session::traffic_figures read_traffic(const traffic_table& table);

}  // namespace mcp_ngx
