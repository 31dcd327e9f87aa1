// Counting each request of an mcp_session location by JSON-RPC method and
// tool, with the upstream's response time, in the zone's traffic table.
#include "ngx_mcp_session_traffic.hpp"

#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_lost_answer.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_zone.hpp"

#include <cstring>

namespace mcp_ngx {
namespace {

void add(ngx_atomic_t& counter, ngx_atomic_uint_t n = 1) { (void)ngx_atomic_fetch_add(&counter, n); }

// The upstream's response time of the last try, if the request was proxied.
bool upstream_time(ngx_http_request_t* r, ngx_msec_t& ms)
{
    if (r->upstream_states == nullptr || r->upstream_states->nelts == 0) {
        return false;
    }
    const auto* states = static_cast<ngx_http_upstream_state_t*>(r->upstream_states->elts);
    const ngx_http_upstream_state_t& last = states[r->upstream_states->nelts - 1];
    if (last.response_time == static_cast<ngx_msec_t>(-1)) {
        return false;
    }
    ms = last.response_time;
    return true;
}

void count(shared_figures& f, ngx_uint_t status, bool timed, ngx_msec_t ms)
{
    add(f.requests);
    if (status >= 100 && status < 600) {
        add(f.by_status_class[status / 100 - 1]);
    }
    if (timed) {
        add(f.latency[mcp_session::latency_bucket_of(ms)]);
        add(f.latency_sum_ms, ms);
    }
}

bool is_stable(ngx_atomic_uint_t sequence) { return (sequence & 1) == 0; }

bool names(const shared_tool& tool, std::string_view name)
{
    return tool.name_size == name.size() && std::memcmp(tool.name, name.data(), name.size()) == 0;
}

// Ends a write begun by claiming `sequence` (now sequence + 1).
void publish(shared_tool& tool, ngx_atomic_uint_t sequence)
{
    ngx_memory_barrier();
    tool.sequence = sequence + 2;
}

void write_name(shared_tool& tool, std::string_view name)
{
    std::memcpy(tool.name, name.data(), name.size());
    tool.name_size = static_cast<std::uint8_t>(name.size());
}

// The slot named `name`, if one is (stable and named so before and after
// the comparison).
shared_tool* named_slot(traffic_table& table, std::string_view name)
{
    for (shared_tool& tool : table.tools) {
        const ngx_atomic_uint_t seen = tool.sequence;
        ngx_memory_barrier();
        if (is_stable(seen) && names(tool, name)) {
            ngx_memory_barrier();
            if (tool.sequence == seen) {
                return &tool;
            }
        }
    }
    return nullptr;
}

// Without configured names, the first free slot in order takes a new
// name. Everyone claims in the same order, so a worker racing another for
// the same name meets the other's slot (being named: this one request
// counts as "other") before any later free one: one name never gets two
// series.
shared_figures& claim_slot(traffic_table& table, std::string_view name)
{
    for (shared_tool& tool : table.tools) {
        const ngx_atomic_uint_t seen = tool.sequence;
        ngx_memory_barrier();
        if (!is_stable(seen)) {
            return table.other_tools;
        }
        if (tool.name_size != 0) {
            if (names(tool, name)) {
                return tool.figures;
            }
            continue;
        }
        if (!ngx_atomic_cmp_set(&tool.sequence, seen, seen + 1)) {
            return table.other_tools;
        }
        // The master may have begun applying configured names meanwhile
        // (it sets the flag before looking at the slots): give it back.
        if (table.tools_configured != 0) {
            publish(tool, seen);
            return table.other_tools;
        }
        write_name(tool, name);
        publish(tool, seen);
        return tool.figures;
    }
    return table.other_tools;
}

shared_figures& tool_figures_for(traffic_table& table, std::string_view name)
{
    if (!mcp_session::is_trackable_tool_name(name)) {
        return table.other_tools;
    }
    if (shared_tool* tool = named_slot(table, name)) {
        return tool->figures;
    }
    if (table.tools_configured != 0) {
        return table.other_tools;  // exactly the names the operator wrote
    }
    return claim_slot(table, name);
}

// The master's wait for a worker between its claim and its publish (a few
// instructions, unless it died there: then the slot is left as it is).
bool wait_stable(shared_tool& tool, ngx_atomic_uint_t& seen)
{
    for (int spins = 0; spins < 1000000; ++spins) {
        seen = tool.sequence;
        if (is_stable(seen)) {
            ngx_memory_barrier();
            return true;
        }
        ngx_cpu_pause();
    }
    return false;
}

bool listed(const ngx_array_t* configured, std::string_view name)
{
    const auto* names_in = static_cast<const ngx_str_t*>(configured->elts);
    for (ngx_uint_t i = 0; i < configured->nelts; ++i) {
        if (to_view(names_in[i]) == name) {
            return true;
        }
    }
    return false;
}

void apply_to_table(traffic_table& table, const ngx_array_t* configured, const zone_conf& zone, ngx_log_t* log)
{
    if (configured == nullptr || configured->nelts == 0) {
        (void)ngx_atomic_cmp_set(&table.tools_configured, 1, 0);  // slots already named keep their series
        return;
    }
    // A locked operation: a full fence before the slots are looked at,
    // which a worker's claim (also locked) pairs with.
    (void)ngx_atomic_cmp_set(&table.tools_configured, 0, 1);
    for (shared_tool& tool : table.tools) {
        ngx_atomic_uint_t seen = 0;
        if (!wait_stable(tool, seen) || tool.name_size == 0 ||
            listed(configured, std::string_view(reinterpret_cast<const char*>(tool.name), tool.name_size))) {
            continue;
        }
        if (ngx_atomic_cmp_set(&tool.sequence, seen, seen + 1)) {
            tool.name_size = 0;
            ngx_memzero(&tool.figures, sizeof(tool.figures));
            publish(tool, seen);
        }
    }
    const auto* wanted = static_cast<const ngx_str_t*>(configured->elts);
    for (ngx_uint_t i = 0; i < configured->nelts; ++i) {
        const std::string_view name = to_view(wanted[i]);
        if (named_slot(table, name) != nullptr) {
            continue;
        }
        bool placed = false;
        for (shared_tool& tool : table.tools) {
            ngx_atomic_uint_t seen = 0;
            if (wait_stable(tool, seen) && tool.name_size == 0 && ngx_atomic_cmp_set(&tool.sequence, seen, seen + 1)) {
                write_name(tool, name);
                publish(tool, seen);
                placed = true;
                break;
            }
        }
        if (!placed) {
            ngx_log_error(NGX_LOG_WARN, log, 0, "mcp_session zone \"%V\": no free slot for tracked tool \"%V\"",
                          &zone.name, &wanted[i]);
        }
    }
}

std::uint64_t load(const ngx_atomic_t& v) { return static_cast<std::uint64_t>(v); }

mcp_session::request_figures copy(const shared_figures& f)
{
    mcp_session::request_figures out;
    out.requests = load(f.requests);
    for (std::size_t i = 0; i < out.by_status_class.size(); ++i) {
        out.by_status_class[i] = load(f.by_status_class[i]);
    }
    for (std::size_t i = 0; i < out.latency.size(); ++i) {
        out.latency[i] = load(f.latency[i]);
    }
    out.latency_sum_ms = load(f.latency_sum_ms);
    return out;
}

}  // namespace

ngx_int_t record_traffic(ngx_http_request_t* r) noexcept
{
    request_state* state = state_of(r);
    if (state == nullptr || state->zone == nullptr || state->zone->shared == nullptr ||
        state->zone->shared->traffic == nullptr) {
        return NGX_OK;
    }
    traffic_table& table = *state->zone->shared->traffic;
    const ngx_uint_t status = r->headers_out.status;
    ngx_msec_t ms = 0;
    const bool timed = upstream_time(r, ms);
    const std::string_view method = to_view(state->method);
    count(table.methods[mcp_session::method_index(method)], status, timed, ms);
    if (method == "tools/call") {
        count(tool_figures_for(table, to_view(state->target)), status, timed, ms);
    }
    add(table.statuses[mcp_session::method_index(method)][mcp_session::status_index(static_cast<unsigned>(status))]);
    if (state->answered_here || (state->streamed && status >= 400) || lost_answer_replaced(state)) {
        add(table.own_answers[static_cast<std::size_t>(mcp_session::own_answer_of(static_cast<unsigned>(status)))]);
    }
    return NGX_OK;
}

void record_answer_errors(zone_conf& zone, std::string_view method, const mcp_session::error_counts& counts)
{
    if (zone.shared == nullptr || zone.shared->traffic == nullptr) {
        return;
    }
    ngx_atomic_t* row = zone.shared->traffic->errors[mcp_session::method_index(method)];
    for (std::size_t c = 0; c < counts.size(); ++c) {
        if (counts[c] != 0) {
            add(row[c], counts[c]);
        }
    }
}

void apply_tracked_tools(ngx_cycle_t* cycle) noexcept
{
    for_each_zone(cycle, [cycle](zone_conf& zone) {
        if (zone.shared != nullptr && zone.shared->traffic != nullptr) {
            apply_to_table(*zone.shared->traffic, zone.tracked_tools, zone, cycle->log);
        }
    });
}

mcp_session::traffic_figures read_traffic(const traffic_table& table)
{
    mcp_session::traffic_figures out;
    for (std::size_t i = 0; i < out.methods.size(); ++i) {
        out.methods[i] = copy(table.methods[i]);
    }
    for (std::size_t i = 0; i < mcp_session::max_tracked_tools; ++i) {
        const shared_tool& tool = table.tools[i];
        const ngx_atomic_uint_t seen = tool.sequence;
        ngx_memory_barrier();
        if (!is_stable(seen) || tool.name_size == 0) {
            continue;
        }
        mcp_session::tool_figures& t = out.tools[out.tools_used];
        t.name.assign(reinterpret_cast<const char*>(tool.name), tool.name_size);
        t.figures = copy(tool.figures);
        ngx_memory_barrier();
        if (tool.sequence != seen) {
            t = mcp_session::tool_figures{};  // renamed while read: shown at the next scrape
            continue;
        }
        ++out.tools_used;
    }
    out.tools.back().figures = copy(table.other_tools);
    for (std::size_t i = 0; i < out.own_answers.size(); ++i) {
        out.own_answers[i] = load(table.own_answers[i]);
    }
    for (std::size_t m = 0; m < out.statuses.size(); ++m) {
        for (std::size_t s = 0; s < out.statuses[m].size(); ++s) {
            out.statuses[m][s] = load(table.statuses[m][s]);
        }
        for (std::size_t c = 0; c < out.errors[m].size(); ++c) {
            out.errors[m][c] = load(table.errors[m][c]);
        }
    }
    return out;
}

}  // namespace mcp_ngx
