#include "mcp_session/traffic.hpp"

#include "mcp_session/status.hpp"

#include <cstdio>

namespace mcp_session {
namespace {

std::string seconds_text(double s)
{
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", s);
    return buf;
}

std::string ms_as_seconds(std::uint64_t ms)
{
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%llu.%03llu", static_cast<unsigned long long>(ms / 1000),
                  static_cast<unsigned long long>(ms % 1000));
    return buf;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help)
{
    out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" ");
    out.append(type).append("\n");
}

// The samples of one label set: requests, status classes, histogram.
void figures_samples(std::string& requests, std::string& classes, std::string& histogram, std::string_view prefix,
                     const std::string& labels, const request_figures& f)
{
    requests.append(prefix).append("_total{").append(labels).append("} ").append(std::to_string(f.requests)).append("\n");
    for (std::size_t c = 0; c < f.by_status_class.size(); ++c) {
        if (f.by_status_class[c] == 0) {
            continue;
        }
        classes.append(prefix).append("_responses_total{").append(labels).append(",status_class=\"");
        classes.append(std::to_string(c + 1)).append("xx\"} ").append(std::to_string(f.by_status_class[c])).append("\n");
    }
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < latency_buckets; ++b) {
        cumulative += f.latency[b];
        const std::string le = b + 1 < latency_buckets ? seconds_text(latency_bounds_seconds[b]) : "+Inf";
        histogram.append(prefix).append("_duration_seconds_bucket{").append(labels).append(",le=\"").append(le);
        histogram.append("\"} ").append(std::to_string(cumulative)).append("\n");
    }
    histogram.append(prefix).append("_duration_seconds_sum{").append(labels).append("} ");
    histogram.append(ms_as_seconds(f.latency_sum_ms)).append("\n");
    histogram.append(prefix).append("_duration_seconds_count{").append(labels).append("} ");
    histogram.append(std::to_string(cumulative)).append("\n");
}

// A counter by method and one more label, without its zero samples.
template <std::size_t N, typename LabelOf>
void by_method(std::string& out, const std::string& zone_label, std::string_view name, std::string_view label,
               const std::array<std::array<std::uint64_t, N>, method_labels.size()>& rows, LabelOf label_of)
{
    for (std::size_t m = 0; m < rows.size(); ++m) {
        for (std::size_t i = 0; i < N; ++i) {
            if (rows[m][i] == 0) {
                continue;
            }
            out.append(name).append("{").append(zone_label).append(",method=\"");
            out.append(prometheus_label_value(method_labels[m])).append("\",").append(label).append("=\"");
            out.append(label_of(i)).append("\"} ").append(std::to_string(rows[m][i])).append("\n");
        }
    }
}

}  // namespace

std::size_t latency_bucket_of(std::uint64_t ms)
{
    for (std::size_t b = 0; b < latency_bounds_seconds.size(); ++b) {
        if (static_cast<double>(ms) <= latency_bounds_seconds[b] * 1000.0) {
            return b;
        }
    }
    return latency_buckets - 1;
}

bool is_trackable_tool_name(std::string_view name)
{
    if (name.empty() || name.size() > max_tool_name) {
        return false;
    }
    for (const char c : name) {
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

std::size_t method_index(std::string_view method)
{
    if (method.empty()) {
        return method_labels.size() - 1;  // none
    }
    for (std::size_t i = 0; i + 2 < method_labels.size(); ++i) {
        if (method_labels[i] == method) {
            return i;
        }
    }
    return method_labels.size() - 2;  // other
}

own_answer own_answer_of(unsigned status)
{
    switch (status) {
    case 404: return own_answer::session_not_found;
    case 401: return own_answer::unauthorized;
    case 403: return own_answer::forbidden;
    case 409: return own_answer::conflict;
    case 400: return own_answer::bad_request;
    case 406: return own_answer::not_acceptable;
    case 413: return own_answer::too_large;
    case 503: return own_answer::no_room;
    default: return own_answer::other;
    }
}

std::string_view own_answer_label(own_answer reason)
{
    switch (reason) {
    case own_answer::session_not_found: return "session_not_found";
    case own_answer::unauthorized: return "unauthorized";
    case own_answer::forbidden: return "forbidden";
    case own_answer::conflict: return "conflict";
    case own_answer::bad_request: return "bad_request";
    case own_answer::not_acceptable: return "not_acceptable";
    case own_answer::too_large: return "too_large";
    case own_answer::no_room: return "no_room";
    case own_answer::other:
    case own_answer::count_: break;
    }
    return "other";
}

std::size_t status_index(unsigned status)
{
    for (std::size_t i = 0; i < tracked_statuses.size(); ++i) {
        if (tracked_statuses[i] == status) {
            return i;
        }
    }
    return tracked_statuses.size();  // other
}

error_class error_class_of(std::int64_t code)
{
    switch (code) {
    case -32700: return error_class::parse_error;
    case -32600: return error_class::invalid_request;
    case -32601: return error_class::method_not_found;
    case -32602: return error_class::invalid_params;
    case -32603: return error_class::internal_error;
    default: break;
    }
    return code >= -32099 && code <= -32000 ? error_class::server_error : error_class::other;
}

std::string_view error_class_label(error_class c)
{
    switch (c) {
    case error_class::parse_error: return "parse_error";
    case error_class::invalid_request: return "invalid_request";
    case error_class::method_not_found: return "method_not_found";
    case error_class::invalid_params: return "invalid_params";
    case error_class::internal_error: return "internal_error";
    case error_class::server_error: return "server_error";
    case error_class::tool_error: return "tool_error";
    case error_class::other:
    case error_class::count_: break;
    }
    return "other";
}

std::string traffic_prometheus(std::string_view zone, const traffic_figures& figures)
{
    const std::string zone_label = "zone=\"" + prometheus_label_value(zone) + "\"";
    std::string out;

    std::string requests, classes, histogram;
    for (std::size_t i = 0; i < method_labels.size(); ++i) {
        const std::string labels = zone_label + ",method=\"" + prometheus_label_value(method_labels[i]) + "\"";
        figures_samples(requests, classes, histogram, "mcp_session_requests", labels, figures.methods[i]);
    }
    header(out, "mcp_session_requests_total", "counter", "Requests in mcp_session locations, by JSON-RPC method.");
    out += requests;
    header(out, "mcp_session_requests_responses_total", "counter",
           "Answers to those requests by HTTP status class (nginx's own answers included).");
    out += classes;
    header(out, "mcp_session_requests_duration_seconds", "histogram",
           "Upstream response time of proxied requests, by JSON-RPC method.");
    out += histogram;

    requests.clear();
    classes.clear();
    histogram.clear();
    for (std::size_t i = 0; i < figures.tools.size(); ++i) {
        const tool_figures& t = figures.tools[i];
        const bool other = i + 1 == figures.tools.size();
        if (!other && t.name.empty()) {
            continue;
        }
        const std::string labels = zone_label + ",tool=\"" + (other ? std::string("other") : prometheus_label_value(t.name)) + "\"";
        figures_samples(requests, classes, histogram, "mcp_session_tool_calls", labels, t.figures);
    }
    header(out, "mcp_session_tool_calls_total", "counter",
           "tools/call requests by tool name (the names mcp_session_tracked_tools configures, else the first 32 a "
           "zone sees; any other name is \"other\").");
    out += requests;
    header(out, "mcp_session_tool_calls_responses_total", "counter", "Answers to tools/call by HTTP status class.");
    out += classes;
    header(out, "mcp_session_tool_calls_duration_seconds", "histogram", "Upstream response time of tools/call, by tool.");
    out += histogram;

    header(out, "mcp_session_http_responses_total", "counter",
           "Answers in mcp_session locations by exact HTTP status (a fixed list of codes, any other is \"other\"), "
           "by JSON-RPC method.");
    by_method(out, zone_label, "mcp_session_http_responses_total", "status", figures.statuses, [](std::size_t s) {
        return s < tracked_statuses.size() ? std::to_string(tracked_statuses[s]) : std::string("other");
    });
    header(out, "mcp_session_jsonrpc_errors_total", "counter",
           "Backend answers to POSTs carrying a JSON-RPC error, by JSON-RPC method and error code class "
           "(tool_error: a tools/call result with isError true).");
    by_method(out, zone_label, "mcp_session_jsonrpc_errors_total", "class", figures.errors, [](std::size_t c) {
        return std::string(error_class_label(static_cast<error_class>(c)));
    });

    header(out, "mcp_session_own_answers_total", "counter",
           "Answers nginx made itself instead of the backend, by reason (session_not_found: the client must re-initialize).");
    for (std::size_t r = 0; r < figures.own_answers.size(); ++r) {
        out += "mcp_session_own_answers_total{" + zone_label + ",reason=\"" +
               std::string(own_answer_label(static_cast<own_answer>(r))) + "\"} " + std::to_string(figures.own_answers[r]) + "\n";
    }
    return out;
}

}  // namespace mcp_session
