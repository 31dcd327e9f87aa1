// MCP traffic figures for the status endpoint: requests per JSON-RPC
// method and per tool with upstream latency histograms, answers by HTTP
// status (class and exact code), backend JSON-RPC errors by code class,
// and the module's own answers by reason. Cardinality is bounded: a fixed
// method list (anything else is "other"), a fixed status list, and either
// the tool names mcp_session_tracked_tools configures or else the first
// max_tracked_tools distinct names a zone sees (other names are "other"),
// so a client inventing names cannot grow the scrape.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mcp_session {

// Upper bounds of the latency histogram, in seconds (Prometheus' "le").
inline constexpr std::array<double, 11> latency_bounds_seconds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                   0.5,   1,    2.5,   5,    10};
inline constexpr std::size_t latency_buckets = latency_bounds_seconds.size() + 1;  // the last is +Inf

// The bucket a latency of `ms` milliseconds falls in.
std::size_t latency_bucket_of(std::uint64_t ms);

// The method label values, in index order. "none": the body was not read
// (learn mode without mcp_session_inspect_body, GET, DELETE).
inline constexpr std::array<std::string_view, 24> method_labels = {
    "initialize",       "ping",
    "tools/list",       "tools/call",
    "resources/list",   "resources/templates/list",
    "resources/read",   "resources/subscribe",
    "resources/unsubscribe", "prompts/list",
    "prompts/get",      "completion/complete",
    "logging/setLevel", "notifications/initialized",
    "notifications/cancelled", "notifications/progress",
    "notifications/roots/list_changed", "tasks/get",
    "tasks/list",       "tasks/cancel",
    "tasks/result",     "batch",
    "other",            "none",
};

std::size_t method_index(std::string_view method);

// Tool slots per zone: configured names, or else the first names seen.
inline constexpr std::size_t max_tracked_tools = 32;
inline constexpr std::size_t max_tool_name = 64;

// A tool name gets a label of its own only if it is 1..max_tool_name bytes
// of printable ASCII: anything else (a client's garbage) counts as "other".
bool is_trackable_tool_name(std::string_view name);

// The module's own answers, by what they tell the client.
enum class own_answer : std::uint8_t {
    session_not_found,  // 404: re-initialize
    unauthorized,       // 401: binding mismatch (mcp_session_distinct_binding_errors)
    forbidden,          // 403: Origin not allowed, or a binding mismatch
    conflict,           // 409: tenant mismatch (mcp_session_distinct_binding_errors)
    bad_request,        // 400: malformed headers, body or Last-Event-ID
    not_acceptable,     // 406: Accept refuses text/event-stream
    too_large,          // 413
    no_room,            // 503: the zone had no room
    other,
    count_,
};

own_answer own_answer_of(unsigned status);
std::string_view own_answer_label(own_answer reason);

// Exact HTTP statuses counted on their own; any other is "other" (the
// status class counters still see it).
inline constexpr std::array<unsigned, 16> tracked_statuses = {200, 202, 204, 400, 401, 403, 404, 405,
                                                              406, 409, 413, 429, 500, 502, 503, 504};
inline constexpr std::size_t status_labels = tracked_statuses.size() + 1;  // the last is "other"

std::size_t status_index(unsigned status);

// What kind of failure a backend's JSON-RPC answer reports: the error
// code classes of JSON-RPC 2.0, and a tools/call result with isError.
enum class error_class : std::uint8_t {
    parse_error,       // -32700
    invalid_request,   // -32600
    method_not_found,  // -32601
    invalid_params,    // -32602
    internal_error,    // -32603
    server_error,      // -32099 .. -32000 (implementation-defined)
    other,             // any other code, or none readable
    tool_error,        // tools/call result with "isError": true
    count_,
};
inline constexpr std::size_t error_classes = static_cast<std::size_t>(error_class::count_);

error_class error_class_of(std::int64_t code);
std::string_view error_class_label(error_class c);

// One label set's figures, as read from the zone.
struct request_figures {
    std::uint64_t requests = 0;
    std::array<std::uint64_t, 5> by_status_class{};  // 1xx .. 5xx
    std::array<std::uint64_t, latency_buckets> latency{};  // not cumulative
    std::uint64_t latency_sum_ms = 0;
};

struct tool_figures {
    std::string name;  // empty: the "other" bucket
    request_figures figures;
};

struct traffic_figures {
    std::array<request_figures, method_labels.size()> methods{};
    std::array<tool_figures, max_tracked_tools + 1> tools{};  // the last is "other"
    std::size_t tools_used = 0;                                 // named slots taken
    std::array<std::uint64_t, static_cast<std::size_t>(own_answer::count_)> own_answers{};
    std::array<std::array<std::uint64_t, status_labels>, method_labels.size()> statuses{};   // by method
    std::array<std::array<std::uint64_t, error_classes>, method_labels.size()> errors{};     // by method
};

// Prometheus text exposition for one zone (appended to status_prometheus).
std::string traffic_prometheus(std::string_view zone, const traffic_figures& figures);

}  // namespace mcp_session
