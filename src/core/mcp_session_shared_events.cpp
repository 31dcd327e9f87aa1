#include "mcp_session/shared_events.hpp"

#include "mcp_session/shared_record.hpp"

#include <charconv>

namespace mcp_session {
namespace {

std::string tagged(std::string_view prefix, std::string_view kind, const session_key& key)
{
    std::string name;
    const std::string token = shared_token(key);
    name.reserve(prefix.size() + kind.size() + token.size() + 2);
    name.append(prefix).append(kind).append("{").append(token).append("}");
    return name;
}

// A plain decimal that fits; nothing else (no sign, no spaces, no leading zeros but "0").
template <typename Number>
bool take_number(std::string_view& text, char end, Number& out)
{
    const std::size_t stop = text.find(end);
    if (stop == std::string_view::npos || stop == 0 || stop > 20 || (stop > 1 && text[0] == '0')) {
        return false;
    }
    const char* first = text.data();
    const auto [ptr, ec] = std::from_chars(first, first + stop, out);
    if (ec != std::errc() || ptr != first + stop) {
        return false;
    }
    text.remove_prefix(stop + 1);
    return true;
}

}  // namespace

std::string shared_events_key(std::string_view prefix, const session_key& key) { return tagged(prefix, "e:", key); }

std::string shared_events_channel(std::string_view prefix, const session_key& key)
{
    return tagged(prefix, "ev:", key);
}

std::string shared_listener_key(std::string_view prefix, const session_key& key) { return tagged(prefix, "l:", key); }

std::optional<session_key> key_of_events_channel(std::string_view prefix, std::string_view channel)
{
    const std::string head = std::string(prefix) + "ev:{";
    if (channel.size() <= head.size() + 1 || channel.substr(0, head.size()) != head || channel.back() != '}') {
        return std::nullopt;
    }
    return key_from_shared_token(channel.substr(head.size(), channel.size() - head.size() - 1));
}

std::string encode_shared_event_body(const shared_event& event)
{
    std::string body;
    body.reserve(48 + event.payload.size());
    body += std::to_string(static_cast<unsigned>(event.kind));
    body += ' ';
    body += std::to_string(event.post_stream);
    body += ' ';
    body += std::to_string(event.post_index);
    body += ' ';
    body += std::to_string(static_cast<unsigned>(event.flags));
    body += '\n';
    body.append(event.payload);
    return body;
}

shared_message decode_shared_message(std::string_view text)
{
    shared_message message;
    if (text.empty()) {
        return message;
    }
    if (text[0] == 'L') {
        const std::string_view name = text.substr(1);
        if (name.empty() || name.size() > max_listener_name) {
            return message;
        }
        for (const char c : name) {
            if (c <= ' ' || c > '~') {
                return message;
            }
        }
        message.what = shared_message::type::listener;
        message.listener = name;
        return message;
    }
    if (text[0] != 'E') {
        return message;
    }
    text.remove_prefix(1);
    shared_event& e = message.event;
    unsigned kind = 0;
    unsigned flags = 0;
    if (!take_number(text, ' ', e.id) || e.id == 0 || !take_number(text, ' ', kind) ||
        !take_number(text, ' ', e.post_stream) || !take_number(text, ' ', e.post_index) ||
        !take_number(text, '\n', flags)) {
        return message;
    }
    const bool marker = kind == static_cast<unsigned>(event_kind::init);
    if (flags > shared_flags_known || (kind != static_cast<unsigned>(event_kind::message) &&
                                       kind != static_cast<unsigned>(event_kind::progress) && !marker)) {
        return message;
    }
    e.kind = static_cast<event_kind>(kind);
    e.flags = static_cast<std::uint8_t>(flags);
    // A POST stream's events are its field lines; a marker names its stream.
    if ((e.post_stream != 0) != ((e.flags & shared_flag_framed) != 0 || marker) || (marker && e.post_stream == 0) ||
        (!marker && (e.flags & shared_flag_closed) != 0) ||
        ((e.flags & shared_flag_response) != 0 && (e.flags & shared_flag_framed) == 0) || (marker && !text.empty())) {
        return message;
    }
    e.payload = text;
    message.what = shared_message::type::event;
    return message;
}

std::uint64_t shared_entry_id(std::string_view entry_id)
{
    if (entry_id.size() < 3 || entry_id.substr(0, 2) != "0-") {
        return 0;
    }
    entry_id.remove_prefix(2);
    std::uint64_t id = 0;
    std::string text(entry_id);
    text += '.';
    std::string_view view(text);
    return take_number(view, '.', id) && view.empty() ? id : 0;
}

}  // namespace mcp_session
