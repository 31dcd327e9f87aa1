#include "mcp_session/message.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <utility>

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

// A raw NUL byte: see inspect_message_body.
json parse_body(std::string_view body)
{
    if (body.find('\0') != std::string_view::npos) {
        return json(json::value_t::discarded);
    }
    return json::parse(body.begin(), body.end(), nullptr, false);
}

}  // namespace

std::string log_label(std::string_view text, std::size_t limit)
{
    if (text.size() > limit) {
        return {};
    }
    std::string out(text);
    for (char& c : out) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f) {
            c = '?';
        }
    }
    return out;
}

namespace {

// Where a value sits in a JSON-RPC body: only these places matter.
enum class place : std::uint8_t { other, batch, message, method, id, params, meta, version, name, uri };

// Streams through the body once, remembering per message only what the
// facts need. Duplicate keys: the last one wins, as in nlohmann's DOM,
// because every key resets what an earlier one of its name had set.
class inspector final : public json::json_sax_t {
public:
    explicit inspector(std::size_t size) : size_(size) {}

    bool null() override { return value(); }
    bool boolean(bool) override { return value(); }
    bool number_integer(number_integer_t v) override { return integer(std::to_string(v)); }
    bool number_unsigned(number_unsigned_t v) override { return integer(std::to_string(v)); }
    bool number_float(number_float_t, const string_t&) override { return value(); }
    bool binary(binary_t&) override { return value(); }

    bool string(string_t& v) override
    {
        const place at = value_place();
        if (at == place::method) {
            message_.initialize = v == "initialize";
            message_.method = log_label(v, max_method_length);
        } else if (at == place::name) {
            message_.name = log_label(v, max_target_length);
        } else if (at == place::uri) {
            message_.uri = log_label(v, max_target_length);
        } else if (at == place::id) {
            // Its JSON text is at least two bytes longer: too long to keep, so never copied.
            message_.id = v.size() + 2 > max_inspected_id_length
                              ? std::string("null")
                              : json(v).dump(-1, ' ', false, json::error_handler_t::replace);
        } else if (at == place::version && v.size() <= max_meta_version_length) {
            message_.version = v;
        }
        return value();
    }

    bool start_object(std::size_t) override { return open(value_place(), true); }
    bool start_array(std::size_t) override { return open(value_place(), false); }

    bool key(string_t& k) override
    {
        const place container = levels_[depth_ - 1].container;
        place next = place::other;
        if (container == place::message) {
            if (k == "method") {
                next = place::method;
                message_.initialize = false;
                message_.method.clear();
            } else if (k == "id") {
                next = place::id;
                message_.id = "null";
            } else if (k == "params") {
                next = place::params;
                message_.version.reset();
            }
        } else if (container == place::params && k == "_meta") {
            next = place::meta;
            message_.version.reset();
        } else if (container == place::params && k == "name") {
            next = place::name;
            message_.name.clear();
        } else if (container == place::params && k == "uri") {
            next = place::uri;
            message_.uri.clear();
        } else if (container == place::meta && k == "io.modelcontextprotocol/protocolVersion") {
            next = place::version;
            message_.version.reset();
        }
        levels_[depth_ - 1].next = next;
        return true;
    }

    bool end_object() override { return close(); }
    bool end_array() override { return close(); }

    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) override
    {
        // The lexer read past the prefix: its end cut a token or a value.
        cut_ = position > size_;
        return false;
    }

    // After sax_parse: what the body (or, when cut, its prefix) says.
    message_facts facts(bool parsed, bool complete)
    {
        if (!parsed && !cut_) {
            return {};  // not JSON, a bare scalar, or nested too deep: the prefix settles it
        }
        if (complete) {
            if (!parsed) {
                return {};  // the whole body ends inside a value
            }
            facts_.json = true;
            return facts_;
        }
        // A clean prefix of a longer body: what it holds, undecided.
        if (in_message_) {
            commit();
        }
        facts_.json = started_;
        facts_.decided = false;
        return facts_;
    }

private:
    struct level {
        place container;
        place next;  // where the value after the last key goes
    };
    struct message_state {
        bool initialize = false;
        std::string id = "null";
        std::optional<std::string> version;
        std::string method;
        std::string name;  // params.name (tools/call, prompts/get)
        std::string uri;   // params.uri (resources/read)
    };

    place value_place()
    {
        if (depth_ == 0) {
            return place::other;  // decided by open(): only containers are messages
        }
        level& parent = levels_[depth_ - 1];
        if (parent.container == place::batch) {
            return place::message;
        }
        return parent.next;
    }

    bool value()
    {
        if (depth_ == 0) {
            return false;  // a bare scalar is no message
        }
        return true;
    }

    bool integer(std::string text)
    {
        if (value_place() == place::id) {
            message_.id = std::move(text);
        }
        return value();
    }


    bool open(place at, bool object)
    {
        if (depth_ == max_inspected_depth) {
            return false;  // too deep to inspect: not JSON to us
        }
        place container = place::other;
        if (depth_ == 0) {
            started_ = true;
            container = object ? place::message : place::batch;
            if (!object) {
                facts_.method = "batch";
            }
            first_ = true;
        } else if (object && (at == place::message || at == place::params || at == place::meta)) {
            container = at;
            if (at == place::message) {
                first_ = false;  // a batch's error names no single element's id
            }
        }
        if (container == place::message) {
            message_ = message_state{};
            in_message_ = true;
        }
        levels_[depth_++] = level{container, place::other};
        return true;
    }

    bool close()
    {
        if (levels_[--depth_].container == place::message) {
            commit();
        }
        return true;
    }

    // What a method acts on: the tool, prompt or resource it names.
    static std::string target_of(const message_state& m)
    {
        if (m.method == "tools/call" || m.method == "prompts/get") {
            return m.name;
        }
        return m.method == "resources/read" ? m.uri : std::string();
    }

    void commit()
    {
        in_message_ = false;
        facts_.initialize |= message_.initialize;
        if (first_) {
            facts_.id = message_.id.size() <= max_inspected_id_length ? message_.id : "null";
            facts_.method = message_.method;
            facts_.target = target_of(message_);
        }
        if (!facts_.meta_version && message_.version) {
            facts_.meta_version = message_.version;
        }
    }

    std::size_t size_;
    std::size_t depth_ = 0;
    level levels_[max_inspected_depth];
    bool started_ = false;
    bool first_ = false;       // the open message is the body's first
    bool in_message_ = false;
    bool cut_ = false;
    message_state message_;
    message_facts facts_;
};

}  // namespace

message_facts inspect_message_body(std::string_view prefix, bool complete)
{
    if (prefix.size() > max_inspected_bytes) {
        prefix = prefix.substr(0, max_inspected_bytes);
        complete = false;
    }
    // nlohmann's lexer takes a NUL byte for the end of the text, so
    // "{...}\0x" would parse as the object. JSON has no NUL outside an
    // escape: a body holding one is not JSON, as the backend's parser will
    // say too.
    if (prefix.find('\0') != std::string_view::npos) {
        return {};
    }
    inspector sax(prefix.size());
    const bool parsed = json::sax_parse(prefix.begin(), prefix.end(), &sax, json::input_format_t::json, true);
    return sax.facts(parsed, complete);
}

message_facts inspect_message_body(std::string_view body)
{
    return inspect_message_body(body, true);
}

published_message prepare_published_message(std::string_view body)
{
    published_message out;
    if (!nesting_within(body, max_published_depth)) {
        out.refusal = publish_refusal::not_json;  // checked before parsing: nothing deep is ever built
        return out;
    }
    const json message = parse_body(body);
    if (message.is_discarded() || !message.is_object()) {
        out.refusal = publish_refusal::not_json;
        return out;
    }
    const auto version = message.find("jsonrpc");
    const bool is_jsonrpc = version != message.end() && version->is_string() && version->get_ref<const std::string&>() == "2.0";
    const auto method = message.find("method");
    if (is_jsonrpc && method == message.end() && (message.contains("result") || message.contains("error"))) {
        out.refusal = publish_refusal::response;
        return out;
    }
    if (!is_jsonrpc || method == message.end() || !method->is_string()) {
        out.refusal = publish_refusal::not_jsonrpc;
        return out;
    }
    out.payload = message.dump(-1, ' ', false, json::error_handler_t::replace);
    return out;
}

static_assert(max_published_depth == 128, "the refusal message names the depth");

std::string_view publish_refusal_message(publish_refusal refusal)
{
    switch (refusal) {
    case publish_refusal::not_json:
        return "Bad Request: the body must be one JSON-RPC message (a JSON object nested at most 128 levels)";
    case publish_refusal::not_jsonrpc:
        return "Bad Request: only JSON-RPC requests and notifications can be published "
               "(\"jsonrpc\":\"2.0\" and a string \"method\")";
    case publish_refusal::response:
        return "Bad Request: a JSON-RPC response cannot be published: it belongs to the stream of its request";
    case publish_refusal::none:
        break;
    }
    return {};
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
