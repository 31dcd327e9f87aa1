#include "mcp_session/backend_answer.hpp"

#include <nlohmann/json.hpp>

namespace mcp_session {

bool is_jsonrpc_error_body(std::string_view body)
{
    if (body.size() > answer_body_limit) {
        return false;
    }
    // The size bounds the depth, and nlohmann 3.11 parses and destroys
    // without recursion: no nesting limit is needed at 4 KB.
    const nlohmann::json doc = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
    if (!doc.is_object()) {
        return false;
    }
    const auto version = doc.find("jsonrpc");
    const auto error = doc.find("error");
    if (version == doc.end() || *version != "2.0" || error == doc.end() || !error->is_object()) {
        return false;
    }
    const auto code = error->find("code");
    return code != error->end() && code->is_number_integer();
}

}  // namespace mcp_session
