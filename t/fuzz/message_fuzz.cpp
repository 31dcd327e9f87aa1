// Request body inspection (initialize detection, the id echoed in our
// errors, _meta's protocol version): the streaming inspector's verdict is
// checked against a DOM parse of the same bytes, for any bytes, including
// bodies nested too deep to inspect; and a prefix of the body either
// leaves the question open or settles it as the whole body does.
#include "fuzz_check.hpp"
#include "mcp_session/error_body.hpp"
#include "mcp_session/message.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace mcp_session;
using json = nlohmann::json;

namespace {

// Containers nested in a document (a bare object is 1), without recursion.
std::size_t depth_of(const json& doc)
{
    std::size_t deepest = 0;
    std::vector<std::pair<const json*, std::size_t>> stack{{&doc, 1}};
    while (!stack.empty()) {
        const auto [value, depth] = stack.back();
        stack.pop_back();
        if (!value->is_structured()) {
            continue;
        }
        deepest = std::max(deepest, depth);
        for (const json& child : *value) {
            stack.emplace_back(&child, depth + 1);
        }
    }
    return deepest;
}

message_facts expected_facts(const json& doc)
{
    message_facts facts;
    facts.json = true;
    std::vector<const json*> messages;
    if (doc.is_object()) {
        messages.push_back(&doc);
    } else {
        for (const json& m : doc) {
            messages.push_back(&m);
        }
    }
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const json& m = *messages[i];
        if (!m.is_object()) {
            continue;
        }
        if (m.contains("method") && m["method"] == "initialize") {
            facts.initialize = true;
        }
        if (doc.is_object() && m.contains("id") && (m["id"].is_string() || m["id"].is_number_integer())) {  // a batch: null
            const std::string id = m["id"].dump();
            facts.id = id.size() <= max_inspected_id_length ? id : "null";
        }
        if (!facts.meta_version && m.contains("params") && m["params"].is_object() &&
            m["params"].contains("_meta") && m["params"]["_meta"].is_object()) {
            const json& meta = m["params"]["_meta"];
            const auto v = meta.find("io.modelcontextprotocol/protocolVersion");
            if (v != meta.end() && v->is_string() && v->get<std::string>().size() <= max_meta_version_length) {
                facts.meta_version = v->get<std::string>();
            }
        }
    }
    return facts;
}

bool same_facts(const message_facts& a, const message_facts& b)
{
    return a.json == b.json && a.initialize == b.initialize && a.id == b.id && a.meta_version == b.meta_version &&
           a.decided == b.decided;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    if (size > max_inspected_bytes) {
        return 0;  // the reference below is a DOM parse of the whole body
    }
    const message_facts facts = inspect_message_body(body);
    FUZZ_CHECK(facts.decided);  // a whole body within the bound is always decided

    // The id is always JSON text nginx can put in an error body: null, a
    // string or an integer, and our error bodies echo it unchanged.
    const json id = json::parse(facts.id, nullptr, false);
    FUZZ_CHECK(!id.is_discarded());
    FUZZ_CHECK(id.is_null() || id.is_string() || id.is_number_integer());
    const json error = json::parse(transport_error_body("bad request", facts.id), nullptr, false);
    FUZZ_CHECK(error.is_object() && error["id"] == id);

    // nlohmann reads up to a NUL byte as if the text ended there; JSON
    // itself allows no raw NUL anywhere.
    const bool has_nul = body.find('\0') != std::string_view::npos;
    const json doc = has_nul ? json(json::value_t::discarded) : json::parse(body.begin(), body.end(), nullptr, false);
    const bool inspectable =
        !doc.is_discarded() && doc.is_structured() && depth_of(doc) <= max_inspected_depth;
    FUZZ_CHECK(facts.json == inspectable);

    // Any prefix: undecided, or settled as not JSON exactly as the whole.
    const std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
    const message_facts early = inspect_message_body(body.substr(0, cut), false);
    if (early.decided) {
        FUZZ_CHECK(!facts.json && same_facts(early, message_facts{}));
    }
    if (!facts.json) {
        FUZZ_CHECK(same_facts(facts, message_facts{}));
        return 0;
    }
    FUZZ_CHECK(same_facts(facts, expected_facts(doc)));
    // Spelling does not matter: the same document re-serialised, compact or
    // indented, gives the same facts.
    // (within the inspected bound: a longer spelling is read only in part).
    for (const std::string& spelling : {doc.dump(), doc.dump(2)}) {
        if (spelling.size() <= max_inspected_bytes) {
            FUZZ_CHECK(same_facts(inspect_message_body(spelling), facts));
        }
    }
    // A single message and a batch of just that message say the same,
    // except that a batch's errors name no single id.
    if (doc.is_object() && depth_of(doc) < max_inspected_depth && doc.dump().size() + 2 <= max_inspected_bytes) {
        message_facts single = facts;
        single.id = "null";
        FUZZ_CHECK(same_facts(inspect_message_body("[" + doc.dump() + "]"), single));
    }
    return 0;
}
