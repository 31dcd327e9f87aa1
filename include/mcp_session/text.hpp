// Small text rules shared by the header parsers.
#pragma once

#include <string_view>

namespace mcp_session {

// Without the optional whitespace (spaces, tabs) HTTP allows around a
// header value.
inline std::string_view trim_ows(std::string_view raw)
{
    const auto is_ows = [](char c) { return c == ' ' || c == '\t'; };
    while (!raw.empty() && is_ows(raw.front())) {
        raw.remove_prefix(1);
    }
    while (!raw.empty() && is_ows(raw.back())) {
        raw.remove_suffix(1);
    }
    return raw;
}

}  // namespace mcp_session
