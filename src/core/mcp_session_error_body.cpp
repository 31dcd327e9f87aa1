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

std::string error_envelope(int code, std::string message, ordered_json data, std::string_view request_id)
{
    ordered_json id = ordered_json::parse(request_id, nullptr, false);
    if (id.is_discarded() || !(id.is_string() || id.is_number_integer())) {
        id = nullptr;
    }
    ordered_json error = {{"code", code}, {"message", std::move(message)}};
    if (!data.is_null()) {
        error["data"] = std::move(data);
    }
    const ordered_json body = {{"jsonrpc", "2.0"}, {"id", std::move(id)}, {"error", std::move(error)}};
    // The message may hold untrusted bytes: replace invalid UTF-8 rather than throw.
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string session_not_found_body(std::string_view presented_id, std::string_view request_id)
{
    std::string message = "Mcp-Session-Id `" + capped(presented_id) +
                          "` is unknown or expired; re-initialize via POST without Mcp-Session-Id";
    ordered_json data = {{"error", "session_expired"}, {"status", 404}, {"retry", "re-initialize"}};
    return error_envelope(session_not_found_code, std::move(message), std::move(data), request_id);
}

std::string transport_error_body(std::string_view message, std::string_view request_id)
{
    return error_envelope(transport_error_code, std::string(message), nullptr, request_id);
}

}  // namespace mcp_session
