// A zone's MCP traffic counters in shared memory (see mcp_session/traffic.hpp).
// Updated with atomic adds from the log phase, never under the zone lock:
// recording a request costs no lock round trip.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include "mcp_session/traffic.hpp"

namespace mcp_ngx {

struct shared_figures {
    ngx_atomic_t requests;
    ngx_atomic_t by_status_class[5];
    ngx_atomic_t latency[mcp_session::latency_buckets];
    ngx_atomic_t latency_sum_ms;
};

// A tool's slot is claimed once (free -> claiming -> named) and never given
// back: names are few, and a reader sees a name only after it is complete.
struct shared_tool {
    ngx_atomic_t state;  // tool_free, tool_claiming, tool_named
    u_char name[mcp_session::max_tool_name];
    std::uint8_t name_size;
    shared_figures figures;
};

struct traffic_table {
    shared_figures methods[mcp_session::method_labels.size()];
    shared_tool tools[mcp_session::max_tracked_tools];
    shared_figures other_tools;
    ngx_atomic_t own_answers[static_cast<std::size_t>(mcp_session::own_answer::count_)];
};

// Log phase, main requests of mcp_session locations (ngx_mcp_session_traffic.cpp).
ngx_int_t record_traffic(ngx_http_request_t* r) noexcept;

// A copy for the status endpoint (plain loads: each counter is exact,
// the set is not one instant, as with any scrape).
mcp_session::traffic_figures read_traffic(const traffic_table& table);

}  // namespace mcp_ngx
