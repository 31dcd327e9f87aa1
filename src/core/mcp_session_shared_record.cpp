#include "mcp_session/shared_record.hpp"

#include "mcp_session/status.hpp"

#include <array>

namespace mcp_session {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

// The record's version: a node meeting another number leaves it alone.
constexpr std::string_view record_version = "1";

// Decimal milliseconds: at most 15 digits (beyond the year 30000), so
// a value never overflows, and Redis' Lua (doubles) holds it exactly.
constexpr std::size_t max_ms_digits = 15;

int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;  // uppercase too: one spelling per token
}

std::optional<unix_ms> parse_ms(std::string_view text)
{
    if (text.empty() || text.size() > max_ms_digits || (text.size() > 1 && text[0] == '0')) {
        return std::nullopt;
    }
    unix_ms value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + (c - '0');
    }
    return value;
}

std::string hex16(std::uint64_t value)
{
    std::string text(16, '0');
    for (int i = 15; i >= 0; --i) {
        text[static_cast<std::size_t>(i)] = hex_digits[value & 0xf];
        value >>= 4;
    }
    return text;
}

// Printable ASCII without space: what a backend id or upstream address is.
bool visible_ascii(std::string_view text)
{
    for (const char c : text) {
        if (c <= ' ' || c > '~') {
            return false;
        }
    }
    return true;
}

std::string braced(std::string_view prefix, const session_key& key)
{
    std::string name;
    name.reserve(prefix.size() + 4 + 1 + 2 * key.size());
    name.append(prefix).append("s:{").append(shared_token(key)).append("}");
    return name;
}

}  // namespace

bool is_valid_shared_prefix(std::string_view prefix)
{
    if (prefix.size() > max_shared_prefix) {
        return false;
    }
    for (const char c : prefix) {
        if (c <= ' ' || c > '~' || c == '{' || c == '}' || c == '"' || c == '\'' || c == '\\') {
            return false;
        }
    }
    return true;
}

std::string shared_token(const session_key& key)
{
    std::string token;
    token.reserve(1 + 2 * key.size());
    token.push_back(static_cast<char>('0' + static_cast<int>(key.form())));
    for (std::size_t i = 0; i < key.size(); ++i) {
        token.push_back(hex_digits[key.data()[i] >> 4]);
        token.push_back(hex_digits[key.data()[i] & 0xf]);
    }
    return token;
}

std::optional<session_key> key_from_shared_token(std::string_view token)
{
    if (token.size() < 3 || token.size() % 2 == 0 || token.size() > 1 + 2 * session_key::max_stored_size) {
        return std::nullopt;
    }
    if (token[0] < '0' || token[0] > '9') {
        return std::nullopt;
    }
    const auto form = static_cast<std::uint8_t>(token[0] - '0');
    std::array<std::uint8_t, session_key::max_stored_size> bytes{};
    const std::size_t size = (token.size() - 1) / 2;
    for (std::size_t i = 0; i < size; ++i) {
        const int high = hex_value(token[1 + 2 * i]);
        const int low = hex_value(token[2 + 2 * i]);
        if (high < 0 || low < 0) {
            return std::nullopt;
        }
        bytes[i] = static_cast<std::uint8_t>(high << 4 | low);
    }
    if (!session_key::is_canonical(bytes.data(), size, form)) {
        return std::nullopt;
    }
    return session_key::from_stored(bytes.data(), size, static_cast<id_form>(form));
}

std::string shared_session_key(std::string_view prefix, const session_key& key) { return braced(prefix, key); }

std::string shared_tombstone_key(std::string_view prefix, const session_key& key)
{
    return braced(prefix, key) + ":gone";
}

std::string shared_backend_index_key(std::string_view prefix, std::string_view backend_id)
{
    std::string name(prefix);
    name += "bid:";
    for (const char c : backend_id) {
        const auto byte = static_cast<unsigned char>(c);
        name += hex_digits[byte >> 4];
        name += hex_digits[byte & 15];
    }
    return name;
}

std::string shared_end_channel(std::string_view prefix) { return std::string(prefix) + "ended"; }

std::string shared_binding_key_name(std::string_view prefix) { return std::string(prefix) + "binding_key"; }

std::string shared_reseeding_key_name(std::string_view prefix) { return std::string(prefix) + "reseeding"; }

std::vector<std::pair<std::string, std::string>> encode_shared_session(const shared_session& session)
{
    std::vector<std::pair<std::string, std::string>> fields;
    fields.reserve(8);
    fields.emplace_back("v", record_version);
    fields.emplace_back("c", std::to_string(session.created_ms));
    fields.emplace_back("a", std::to_string(session.last_access_ms));
    fields.emplace_back("b", std::to_string(session.bound & 3));
    fields.emplace_back("p", hex16(session.principal));
    fields.emplace_back("t", hex16(session.tenant));
    fields.emplace_back("i", session.backend_id);
    fields.emplace_back("s", session.pinned_server);
    return fields;
}

shared_decoding decode_shared_session(const std::vector<std::string_view>& fields)
{
    shared_decoding out;
    if (fields.empty()) {
        return out;
    }
    const auto malformed = [&](const char* problem) {
        out = shared_decoding{};
        out.result = shared_decoding::verdict::malformed;
        out.problem = problem;
        return out;
    };
    if (fields.size() % 2 != 0) {
        return malformed("an odd number of hash fields");
    }
    // Each known field once: a bit per field seen.
    unsigned seen = 0;
    const auto first_time = [&](unsigned bit) {
        const bool fresh = (seen & bit) == 0;
        seen |= bit;
        return fresh;
    };
    shared_session& s = out.session;
    for (std::size_t i = 0; i < fields.size(); i += 2) {
        const std::string_view name = fields[i];
        const std::string_view value = fields[i + 1];
        if (name.size() != 1) {
            continue;  // not one of ours: a newer node's, or another program's
        }
        switch (name[0]) {
        case 'v':
            if (!first_time(1) || value != record_version) {
                return malformed("an unknown record version");
            }
            break;
        case 'c':
        case 'a': {
            const auto ms = parse_ms(value);
            if (!first_time(name[0] == 'c' ? 2 : 4) || !ms) {
                return malformed("a time that is not decimal milliseconds");
            }
            (name[0] == 'c' ? s.created_ms : s.last_access_ms) = *ms;
            break;
        }
        case 'b':
            if (!first_time(8) || value.size() != 1 || value[0] < '0' || value[0] > '3') {
                return malformed("binding flags out of range");
            }
            s.bound = static_cast<std::uint8_t>(value[0] - '0');
            break;
        case 'p':
        case 't': {
            const auto digest = parse_shared_binding_key(value);
            if (!first_time(name[0] == 'p' ? 16 : 32) || !digest) {
                return malformed("a binding digest that is not 16 hex digits");
            }
            (name[0] == 'p' ? s.principal : s.tenant) = *digest;
            break;
        }
        case 'i':
            if (!first_time(64) || value.size() > max_shared_backend_id || !visible_ascii(value)) {
                return malformed("a backend id that is too long or not printable ASCII");
            }
            s.backend_id.assign(value);
            break;
        case 's':
            if (!first_time(128) || value.size() > max_upstream_name || !visible_ascii(value)) {
                return malformed("an upstream server name that is too long or not printable ASCII");
            }
            s.pinned_server.assign(value);
            break;
        default:
            break;
        }
    }
    if (seen != 255) {
        return malformed("a missing field");
    }
    if (s.created_ms > s.last_access_ms) {
        return malformed("a last access before the creation");
    }
    out.result = shared_decoding::verdict::valid;
    return out;
}

std::string shared_binding_key_text(std::uint64_t key) { return hex16(key); }

std::optional<std::uint64_t> parse_shared_binding_key(std::string_view text)
{
    if (text.size() != 16) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    for (const char c : text) {
        const int digit = hex_value(c);
        if (digit < 0) {
            return std::nullopt;
        }
        value = value << 4 | static_cast<std::uint64_t>(digit);
    }
    return value;
}

}  // namespace mcp_session
