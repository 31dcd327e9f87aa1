// Counting each request of an mcp_session location by JSON-RPC method and
// tool, with the upstream's response time, in the zone's traffic table.
#include "ngx_mcp_session_traffic.hpp"

#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_zone.hpp"

#include <cstring>

namespace mcp_ngx {
namespace {

constexpr ngx_atomic_uint_t tool_free = 0;
constexpr ngx_atomic_uint_t tool_claiming = 1;
constexpr ngx_atomic_uint_t tool_named = 2;

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

shared_figures& tool_figures_for(traffic_table& table, std::string_view name)
{
    if (!mcp_session::is_trackable_tool_name(name)) {
        return table.other_tools;
    }
    for (shared_tool& tool : table.tools) {
        if (tool.state == tool_free && ngx_atomic_cmp_set(&tool.state, tool_free, tool_claiming)) {
            std::memcpy(tool.name, name.data(), name.size());
            tool.name_size = static_cast<std::uint8_t>(name.size());
            ngx_memory_barrier();
            tool.state = tool_named;
            return tool.figures;
        }
        if (tool.state != tool_named) {
            // Another worker is naming this slot, perhaps with this very
            // name: counting it in a later slot could give one name two
            // series, so this one request counts as "other".
            return table.other_tools;
        }
        if (tool.name_size == name.size() && std::memcmp(tool.name, name.data(), name.size()) == 0) {
            return tool.figures;
        }
    }
    return table.other_tools;
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
    if (state->answered_here || (state->streamed && status >= 400)) {
        add(table.own_answers[static_cast<std::size_t>(mcp_session::own_answer_of(static_cast<unsigned>(status)))]);
    }
    return NGX_OK;
}

mcp_session::traffic_figures read_traffic(const traffic_table& table)
{
    mcp_session::traffic_figures out;
    for (std::size_t i = 0; i < out.methods.size(); ++i) {
        out.methods[i] = copy(table.methods[i]);
    }
    for (std::size_t i = 0; i < mcp_session::max_tracked_tools; ++i) {
        const shared_tool& tool = table.tools[i];
        if (tool.state != tool_named) {
            continue;
        }
        ngx_memory_barrier();
        out.tools[out.tools_used].name.assign(reinterpret_cast<const char*>(tool.name), tool.name_size);
        out.tools[out.tools_used].figures = copy(tool.figures);
        ++out.tools_used;
    }
    out.tools.back().figures = copy(table.other_tools);
    for (std::size_t i = 0; i < out.own_answers.size(); ++i) {
        out.own_answers[i] = load(table.own_answers[i]);
    }
    return out;
}

}  // namespace mcp_ngx
