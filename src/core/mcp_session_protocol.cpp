#include "mcp_session/protocol.hpp"

#include <algorithm>
#include <cctype>

namespace mcp_session {
namespace {

std::string lowercase(std::string_view text)
{
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trimmed(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

bool is_loopback_host(std::string_view host)
{
    return host == "localhost" || host == "127.0.0.1" || host == "[::1]";
}

}  // namespace

bool is_version_syntax(std::string_view v)
{
    if (v.size() != 10 || v[4] != '-' || v[7] != '-') {
        return false;
    }
    for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
    }
    return true;
}

protocol_verdict classify_protocol_version(std::optional<std::string_view> header,
                                           const std::vector<std::string>& accepted)
{
    const std::string_view version = header ? trimmed(*header) : default_version;
    protocol_verdict verdict{protocol_era::malformed, std::string(version)};
    if (!is_version_syntax(version)) {
        return verdict;
    }
    // Same-width ISO dates compare correctly as strings.
    if (version >= first_modern_version) {
        verdict.era = protocol_era::modern;
        return verdict;
    }
    const bool known = version >= first_session_version;
    const bool allowed = accepted.empty() || std::find(accepted.begin(), accepted.end(), version) != accepted.end();
    verdict.era = known && allowed ? protocol_era::session : protocol_era::unsupported;
    return verdict;
}

namespace {

// The q parameter of one media range's parameters (";q=0.5;x=y"); 1 when
// absent, 0 when malformed (RFC 9110 qvalue: 0, 0.ddd, 1, 1.000).
double quality_of(std::string_view params)
{
    while (!params.empty()) {
        const std::size_t semi = params.find(';');
        const std::string_view param = trimmed(params.substr(0, semi));
        params.remove_prefix(semi == std::string_view::npos ? params.size() : semi + 1);
        if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=') {
            continue;
        }
        const std::string_view value = param.substr(2);
        if (value.empty() || value.size() > 5 || (value[0] != '0' && value[0] != '1') ||
            (value.size() > 1 && value[1] != '.')) {
            return 0;
        }
        double q = value[0] - '0';
        double scale = 0.1;
        for (std::size_t i = 2; i < value.size(); ++i, scale /= 10) {
            if (value[i] < '0' || value[i] > '9') {
                return 0;
            }
            q += (value[i] - '0') * scale;
        }
        return q > 1 ? 0 : q;
    }
    return 1;
}

}  // namespace

bool accepts_event_stream(std::string_view accept)
{
    while (!accept.empty()) {
        const std::size_t comma = accept.find(',');
        const std::string_view range = accept.substr(0, comma);
        accept.remove_prefix(comma == std::string_view::npos ? accept.size() : comma + 1);
        const std::size_t semi = range.find(';');
        const std::string_view type = trimmed(range.substr(0, semi));
        if (lowercase(type) == "text/event-stream") {
            return quality_of(semi == std::string_view::npos ? std::string_view{} : range.substr(semi + 1)) > 0;
        }
    }
    return false;
}

std::optional<std::string> origin_host(std::string_view origin)
{
    origin = trimmed(origin);
    const std::size_t scheme_end = origin.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0) {
        return std::nullopt;
    }
    // RFC 3986 scheme: a letter, then letters, digits, '+', '-', '.'; so
    // "evil#://localhost" is not read as an origin of localhost.
    const std::string_view scheme = origin.substr(0, scheme_end);
    const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (!alpha(scheme.front()) || !std::all_of(scheme.begin(), scheme.end(), [&](char c) {
            return alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
        })) {
        return std::nullopt;
    }
    std::string_view rest = origin.substr(scheme_end + 3);
    if (rest.empty() || rest.find_first_of("/?#@ \t") != std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view host = rest;
    if (rest.front() == '[') {
        const std::size_t close = rest.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        host = rest.substr(0, close + 1);
        rest.remove_prefix(close + 1);
    } else {
        const std::size_t colon = rest.find(':');
        host = rest.substr(0, colon);
        rest.remove_prefix(colon == std::string_view::npos ? rest.size() : colon);
    }
    if (!rest.empty()) {
        if (rest.front() != ':' || rest.size() == 1 ||
            !std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return std::nullopt;
        }
    }
    if (host.empty()) {
        return std::nullopt;
    }
    return lowercase(host);
}

bool origin_allowed(std::string_view origin, const origin_policy& policy)
{
    if (policy.any) {
        return true;
    }
    const auto host = origin_host(origin);
    if (!host) {
        return false;
    }
    if (!policy.origins.empty()) {
        const std::string given = lowercase(trimmed(origin));
        return std::find(policy.origins.begin(), policy.origins.end(), given) != policy.origins.end();
    }
    return is_loopback_host(*host) || std::find(policy.hosts.begin(), policy.hosts.end(), *host) != policy.hosts.end();
}

}  // namespace mcp_session
