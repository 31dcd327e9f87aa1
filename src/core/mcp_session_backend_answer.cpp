#include "mcp_session/backend_answer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>

namespace mcp_session {
namespace {

// The envelope's error object, when `body` is one JSON-RPC error envelope.
std::optional<nlohmann::json> error_of(std::string_view body)
{
    if (body.size() > answer_body_limit) {
        return std::nullopt;
    }
    // The size bounds the depth, and nlohmann 3.11 parses and destroys
    // without recursion: no nesting limit is needed at 4 KB.
    nlohmann::json doc = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
    if (!doc.is_object()) {
        return std::nullopt;
    }
    const auto version = doc.find("jsonrpc");
    const auto error = doc.find("error");
    if (version == doc.end() || *version != "2.0" || error == doc.end() || !error->is_object()) {
        return std::nullopt;
    }
    const auto code = error->find("code");
    if (code == error->end() || !code->is_number_integer()) {
        return std::nullopt;
    }
    return std::move(*error);
}

std::string lowered(std::string_view text)
{
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool contains(std::string_view haystack, std::string_view needle)
{
    return haystack.find(needle) != std::string_view::npos;
}

bool default_rule_matches(std::string_view message)
{
    static constexpr std::string_view loss_words[] = {"no valid", "not found", "unknown",        "invalid",
                                                      "expired",  "missing",   "no such",        "does not exist",
                                                      "terminated"};
    if (contains(message, "server not initialized")) {
        return true;
    }
    return contains(message, "session") &&
           std::any_of(std::begin(loss_words), std::end(loss_words),
                       [&](std::string_view word) { return contains(message, word); });
}

// Parse error, method not found, invalid params: the backend judged the
// message itself, so whatever the text says about a "session", it read it.
bool is_message_level_code(std::int64_t code) { return code == -32700 || code == -32601 || code == -32602; }

bool says_session_lost(std::int64_t code, std::string_view message, const lost_session_rules& rules)
{
    const std::string text = lowered(message);
    if (rules.default_rule && !is_message_level_code(code) && default_rule_matches(text)) {
        return true;
    }
    const std::size_t count = std::min(rules.phrase_count, max_lost_session_phrases);
    return std::any_of(rules.phrases, rules.phrases + count, [&](std::string_view phrase) {
        return !phrase.empty() && contains(text, lowered(phrase));
    });
}

}  // namespace

bool is_jsonrpc_error_body(std::string_view body) { return error_of(body).has_value(); }

session_loss_verdict classify_lost_session(int status, std::string_view body, const lost_session_rules& rules)
{
    if (status != 400 && status != 404) {
        return session_loss_verdict::kept;
    }
    const std::optional<nlohmann::json> error = error_of(body);
    if (!error) {
        return session_loss_verdict::kept;
    }
    if (status == 404) {
        return session_loss_verdict::lost;
    }
    const auto message = error->find("message");
    if (message == error->end() || !message->is_string()) {
        return session_loss_verdict::kept;
    }
    const auto code = (*error)["code"].get<std::int64_t>();
    return says_session_lost(code, message->get_ref<const std::string&>(), rules) ? session_loss_verdict::lost
                                                                            : session_loss_verdict::kept;
}

}  // namespace mcp_session
