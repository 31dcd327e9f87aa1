#include "mcp_session/event.hpp"
#include "mcp_session/text.hpp"

#include <charconv>
#include <cstring>

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
    return parse_decimal_u64(raw);
}

void append_sse_event(std::string& out, std::uint64_t id, event_kind kind, std::string_view data)
{
    char text[24];
    const auto end = std::to_chars(text, text + sizeof(text), id).ptr;
    append_sse_event(out, std::string_view(text, static_cast<std::size_t>(end - text)), kind, data);
}

void append_sse_event(std::string& out, std::string_view id, event_kind kind, std::string_view data)
{
    out += "id: ";
    out += id;
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
        const std::size_t end = find_line_end(data, start);
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
