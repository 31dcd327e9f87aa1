#include "mcp_session/sse_wire.hpp"

#include "mcp_session/text.hpp"

#include <cstdio>

namespace mcp_session {
namespace {

// An id-only event: the 2025-11-25 priming form, which clients of that
// revision record as their Last-Event-ID and otherwise skip.
void append_id_only(std::string& out, std::string_view id)
{
    out += "id: ";
    out += id;
    out += "\ndata: \n\n";
}

void append_id_only(std::string& out, std::uint64_t id)
{
    short_text text;
    text << id;
    append_id_only(out, text.view());
}

// The session id is visible ASCII (the gate checked it), but quotes and
// backslashes still need escaping inside a JSON string.
void append_json_string(std::string& out, std::string_view text)
{
    out += '"';
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20 || byte >= 0x7f) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
            out += escaped;
        } else {
            out += c;
        }
    }
    out += '"';
}

// Built under the zone lock: no heap allocation.
short_text dropped_json(std::uint64_t dropped)
{
    short_text json;
    json << "{\"dropped\":" << dropped << "}";
    return json;
}

}  // namespace

wire_form wire_form_for(stream_vocabulary vocabulary, std::string_view protocol_version)
{
    wire_form form;
    form.vocabulary = vocabulary;
    // Revisions are dates: YYYY-MM-DD compares in time order as text.
    form.priming = protocol_version.size() == first_priming_version.size() && protocol_version >= first_priming_version;
    return form;
}

void append_message(std::string& out, const wire_form& form, std::uint64_t id, event_kind kind, std::string_view data)
{
    // The TypeScript SDK dispatches only `message` (or unnamed) events.
    const bool named = form.vocabulary == stream_vocabulary::seed && kind == event_kind::progress;
    append_sse_event(out, id, named ? event_kind::progress : event_kind::message, data);
}

void append_connected(std::string& out, const wire_form& form, std::uint64_t cursor, std::string_view session_id,
                      std::int64_t now_ms)
{
    if (form.vocabulary == stream_vocabulary::seed) {
        std::string data = "{\"session_id\":";
        append_json_string(data, session_id);
        data += ",\"connected_at\":" + std::to_string(now_ms) + "}";
        append_sse_event(out, cursor, event_kind::init, data);
    } else if (form.priming) {
        append_id_only(out, cursor);
    } else {
        out += ": connected\n\n";
    }
}

void append_heartbeat(std::string& out, const wire_form& form, std::uint64_t cursor, std::int64_t now_ms)
{
    if (form.vocabulary == stream_vocabulary::seed) {
        append_sse_event(out, cursor, event_kind::heartbeat, "{\"ts\":" + std::to_string(now_ms) + "}");
    } else if (form.priming) {
        append_id_only(out, cursor);
    } else {
        out += ": heartbeat\n\n";
    }
}

void append_lagged(std::string& out, const wire_form& form, std::string_view last_lost_id, std::uint64_t dropped)
{
    if (form.vocabulary == stream_vocabulary::seed) {
        append_sse_event(out, last_lost_id, event_kind::lagged, dropped_json(dropped).view());
        return;
    }
    // A comment every client skips, with the count for whoever reads it;
    // where the revision allows, the id moves the client's cursor past the gap.
    out += ": lagged ";
    out += dropped_json(dropped).view();
    out += "\n\n";
    if (form.priming) {
        append_id_only(out, last_lost_id);
    }
}

void append_lagged(std::string& out, const wire_form& form, std::uint64_t last_lost_id, std::uint64_t dropped)
{
    short_text id;
    id << last_lost_id;
    append_lagged(out, form, id.view(), dropped);
}

std::string_view closing_text(const wire_form& form)
{
    static const std::string retry = "retry: " + std::to_string(reconnect_retry_ms) + "\n\n";
    return form.priming ? std::string_view(retry) : std::string_view();
}

}  // namespace mcp_session
