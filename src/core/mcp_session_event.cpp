#include "mcp_session/event.hpp"
#include "mcp_session/text.hpp"

#include <cstring>
#include <limits>

namespace mcp_session {

std::string_view kind_name(event_kind kind)
{
    switch (kind) {
    case event_kind::init:
        return "init";
    case event_kind::message:
        return "message";
    case event_kind::progress:
        return "progress";
    case event_kind::lagged:
        return "lagged";
    case event_kind::heartbeat:
        return "heartbeat";
    }
    return "message";
}

std::optional<event_kind> parse_published_kind(std::string_view name)
{
    if (name == "message") {
        return event_kind::message;
    }
    if (name == "progress") {
        return event_kind::progress;
    }
    return std::nullopt;
}

std::optional<std::uint64_t> parse_last_event_id(std::string_view raw)
{
    raw = trim_ows(raw);
    if (raw.empty()) {
        return 0;
    }
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t value = 0;
    for (const char c : raw) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (max - digit) / 10) {
            return std::nullopt;
        }
        value = value * 10 + digit;
    }
    return value;
}

void append_sse_event(std::string& out, std::uint64_t id, event_kind kind, std::string_view data)
{
    out += "id: ";
    out += std::to_string(id);
    out += "\nevent: ";
    out += kind_name(kind);
    out += '\n';
    // The usual payload (compact JSON) has no line break: one data: line,
    // found with memchr (vectorised) rather than a per-byte set search.
    if (data.empty() || (std::memchr(data.data(), '\n', data.size()) == nullptr &&
                         std::memchr(data.data(), '\r', data.size()) == nullptr)) {
        out += "data: ";
        out.append(data);
        out += "\n\n";
        return;
    }
    // SSE ends a line at CR, LF or CRLF: each line of the payload becomes
    // its own data: field, which the client joins back with LF.
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = data.find_first_of("\r\n", start);
        out += "data: ";
        out.append(data.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        out += '\n';
        if (end == std::string_view::npos) {
            break;
        }
        start = end + 1;
        if (data[end] == '\r' && start < data.size() && data[start] == '\n') {
            ++start;
        }
    }
    out += '\n';
}

}  // namespace mcp_session
