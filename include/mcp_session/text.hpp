// Small text rules shared by the header parsers.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
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

// A plain decimal (digits only, at least one, no sign or space) that fits
// 64 bits.
inline std::optional<std::uint64_t> parse_decimal_u64(std::string_view digits)
{
    if (digits.empty()) {
        return std::nullopt;
    }
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t value = 0;
    for (const char c : digits) {
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

}  // namespace mcp_session
