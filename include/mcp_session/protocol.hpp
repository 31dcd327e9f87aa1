// Protocol rules nginx applies before any session work: which MCP revision
// a request speaks, and whether a browser Origin may talk to this server.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcp_session {

// The session era: every well-formed revision from the first published MCP
// revision up to the first sessionless one. The edge is not the server: a
// version the backend negotiated (2024-11-05 included) passes; only
// mcp_session_protocol_versions narrows it.
inline constexpr std::string_view first_session_version = "2024-11-05";
// The first revision without sessions; it and later ones are "modern".
inline constexpr std::string_view first_modern_version = "2026-07-28";
// Assumed when a request names no version (the spec's fallback).
inline constexpr std::string_view default_version = "2025-03-26";

enum class protocol_era {
    session,      // handled by the session layer
    modern,       // passes through untouched: no session ids, no 404 of ours
    unsupported,  // a well-formed version this server does not speak: 400
    malformed,    // not a YYYY-MM-DD version at all: 400
};

struct protocol_verdict {
    protocol_era era;
    std::string version;  // as given, or the default when absent
};

// `accepted` narrows the session era to a list (empty: the whole era).
protocol_verdict classify_protocol_version(std::optional<std::string_view> header,
                                           const std::vector<std::string>& accepted = {});

bool is_version_syntax(std::string_view version);

// Whether an Accept header value admits text/event-stream: listed by name
// (case-insensitive) with a q-value above zero. `text/event-stream;q=0`
// is a refusal, and wildcards do not count: the transport requires the
// client to name the stream type.
bool accepts_event_stream(std::string_view accept);

// The host of a browser Origin ("scheme://host[:port]"), lowercased;
// nullopt for "null", opaque or unparseable origins (refused).
std::optional<std::string> origin_host(std::string_view origin);

struct origin_policy {
    bool any = false;
    std::vector<std::string> origins;  // exact origins, lowercased, from mcp_session_allowed_origins
    std::vector<std::string> hosts;    // the server block's literal server_names, lowercased
};

// DNS-rebinding rule: an Origin is accepted when configured explicitly, or
// (without a configured list) when its host is a loopback name or one of
// the server's names. Never compared with Host: a rebinding attack sends
// the attacker's name in both.
bool origin_allowed(std::string_view origin, const origin_policy& policy);

}  // namespace mcp_session
