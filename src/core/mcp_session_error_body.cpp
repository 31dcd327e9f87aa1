#include "mcp_session/error_body.hpp"

#include <nlohmann/json.hpp>

namespace mcp_session {
namespace {

using ordered_json = nlohmann::ordered_json;

std::string capped(std::string_view untrusted)
{
    if (untrusted.size() <= max_echoed_id_length) {
        return std::string(untrusted);
    }
    return std::string(untrusted.substr(0, max_echoed_id_length)) + "...";
}

// A JSON string of `text`, which may hold untrusted bytes: escaped by
// nlohmann/json, invalid UTF-8 replaced rather than thrown.
std::string json_string(std::string_view text)
{
    return ordered_json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The request's JSON-RPC id when it is a string or an integer, else null.
std::string json_id(std::string_view request_id)
{
    if (request_id == "null") {
        return "null";  // nginx did not read one: the common case needs no parser
    }
    const ordered_json id = ordered_json::parse(request_id, nullptr, false);
    if (id.is_discarded() || !(id.is_string() || id.is_number_integer())) {
        return "null";
    }
    return id.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// {"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…[,"data":…]}},
// written out directly: building an ordered_json tree and dumping it cost
// more (about 3 µs) than proxying the request would.
std::string error_envelope(int code, std::string_view message, std::string_view data_json, std::string_view request_id)
{
    std::string body = R"({"jsonrpc":"2.0","id":)";
    body.reserve(96 + message.size() + data_json.size());
    body += json_id(request_id);
    body += R"(,"error":{"code":)";
    body += std::to_string(code);
    body += R"(,"message":)";
    body += json_string(message);
    if (!data_json.empty()) {
        body += R"(,"data":)";
        body += data_json;
    }
    body += "}}";
    return body;
}

}  // namespace

std::string session_not_found_body(std::string_view presented_id, std::string_view request_id)
{
    std::string message = "Mcp-Session-Id `" + capped(presented_id) +
                          "` is unknown or expired; re-initialize via POST without Mcp-Session-Id";
    return error_envelope(session_not_found_code, message,
                          R"({"error":"session_expired","status":404,"retry":"re-initialize"})", request_id);
}

std::string transport_error_body(std::string_view message, std::string_view request_id)
{
    return error_envelope(transport_error_code, message, {}, request_id);
}

}  // namespace mcp_session
