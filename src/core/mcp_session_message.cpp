#include "mcp_session/message.hpp"

#include <nlohmann/json.hpp>

namespace mcp_session {
namespace {

using json = nlohmann::json;

// Bracket depth outside strings, without parsing.
bool nesting_within(std::string_view body, std::size_t limit)
{
    std::size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : body) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) {
                return false;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return true;
}

// nlohmann's lexer takes a NUL byte for the end of the text, so "{...}\0x"
// would parse as the object. JSON has no NUL outside an escape: a body
// holding one is not JSON, as the backend's parser will say too.
json parse_body(std::string_view body)
{
    if (body.find('\0') != std::string_view::npos) {
        return json(json::value_t::discarded);
    }
    return json::parse(body.begin(), body.end(), nullptr, false);
}

void note_message(const json& message, message_facts& facts, bool first)
{
    if (!message.is_object()) {
        return;
    }
    const auto method = message.find("method");
    if (method != message.end() && method->is_string() && *method == "initialize") {
        facts.initialize = true;
    }
    const auto id = message.find("id");
    if (first && id != message.end() && (id->is_string() || id->is_number_integer())) {
        facts.id = id->dump(-1, ' ', false, json::error_handler_t::replace);
    }
    const auto params = message.find("params");
    if (facts.meta_version || params == message.end() || !params->is_object()) {
        return;
    }
    const auto meta = params->find("_meta");
    if (meta == params->end() || !meta->is_object()) {
        return;
    }
    const auto version = meta->find("io.modelcontextprotocol/protocolVersion");
    if (version != meta->end() && version->is_string()) {
        facts.meta_version = version->get<std::string>();
    }
}

}  // namespace

message_facts inspect_message_body(std::string_view body)
{
    message_facts facts;
    if (!nesting_within(body, max_inspected_depth)) {
        return facts;
    }
    const json parsed = parse_body(body);
    if (parsed.is_discarded() || !(parsed.is_object() || parsed.is_array())) {
        return facts;
    }
    facts.json = true;
    if (parsed.is_object()) {
        note_message(parsed, facts, true);
        return facts;
    }
    bool first = true;
    for (const json& message : parsed) {
        note_message(message, facts, first);
        first = false;
    }
    return facts;
}

message_facts inspect_message_body(std::string_view prefix, bool complete)
{
    if (!complete) {
        message_facts undecided;
        undecided.decided = false;
        return undecided;
    }
    return inspect_message_body(prefix);
}

std::optional<std::string> compact_published_message(std::string_view body)
{
    if (!nesting_within(body, max_published_depth)) {
        return std::nullopt;  // checked before parsing: nothing deep is ever built
    }
    const json message = parse_body(body);
    if (message.is_discarded() || !message.is_object()) {
        return std::nullopt;
    }
    return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::uint64_t binding_digest(std::string_view value, std::uint64_t key)
{
    // Two keyed FNV-1a passes with a 64-bit finaliser; the key is the
    // zone's random seed, so digests differ between zones and restarts.
    std::uint64_t h = 0xcbf29ce484222325ull ^ key;
    for (const char c : value) {
        h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    }
    h ^= value.size();
    for (int round = 0; round < 2; ++round) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull ^ key;
        h ^= h >> 29;
        h *= 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 32;
    }
    return h;
}

}  // namespace mcp_session
