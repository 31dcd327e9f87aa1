// Small text rules shared by the header parsers.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
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

namespace detail {

// Eight bytes of `text` from `at` as one word (one load).
inline std::uint64_t word_at(std::string_view text, std::size_t at)
{
    std::uint64_t w;
    std::memcpy(&w, text.data() + at, sizeof(w));
    return w;
}

// 'A'..'Z' to lower case in every byte at once; every other byte as it is.
inline std::uint64_t ascii_lower(std::uint64_t w)
{
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    const std::uint64_t low7 = w & (0x7F * ones);
    const std::uint64_t at_least_a = low7 + (0x80 - 'A') * ones;   // top bit: byte >= 'A'
    const std::uint64_t past_z = low7 + (0x80 - 'Z' - 1) * ones;  // top bit: byte > 'Z'
    const std::uint64_t upper = at_least_a & ~past_z & ~w & (0x80 * ones);
    return w | (upper >> 2);
}

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }

}  // namespace detail

// ASCII case-insensitive equality (header names), eight bytes a step:
// the byte-by-byte ngx_strncasecmp was a tenth of the module's work on a
// request.
inline bool equals_ignoring_case(std::string_view a, std::string_view b)
{
    if (a.size() != b.size()) {
        return false;
    }
    const std::size_t n = a.size();
    if (n < 8) {
        for (std::size_t i = 0; i < n; ++i) {
            if (detail::ascii_lower(a[i]) != detail::ascii_lower(b[i])) {
                return false;
            }
        }
        return true;
    }
    const auto same_word = [&](std::size_t at) {
        return detail::ascii_lower(detail::word_at(a, at)) == detail::ascii_lower(detail::word_at(b, at));
    };
    for (std::size_t at = 0; at + 8 < n; at += 8) {
        if (!same_word(at)) {
            return false;
        }
    }
    return same_word(n - 8);  // the last eight bytes, overlapping the word before
}

// The first CR or LF at or after `from` (npos: none). Two memchr scans:
// string_view::find_first_of looks each byte up in the set, which made it
// the hottest function of a 64 KB SSE answer.
inline std::size_t find_line_end(std::string_view text, std::size_t from = 0)
{
    if (from >= text.size()) {
        return std::string_view::npos;
    }
    const char* begin = text.data() + from;
    const std::size_t rest = text.size() - from;
    const auto* lf = static_cast<const char*>(std::memchr(begin, '\n', rest));
    const std::size_t before_lf = lf != nullptr ? static_cast<std::size_t>(lf - begin) : rest;
    const auto* cr = static_cast<const char*>(std::memchr(begin, '\r', before_lf));
    if (cr != nullptr) {
        return from + static_cast<std::size_t>(cr - begin);
    }
    return lf != nullptr ? from + before_lf : std::string_view::npos;
}

// Short text (ids, counts) in a fixed array: what code under the zone
// lock builds, where no heap allocation may happen. Longer text is cut.
class short_text {
public:
    short_text& operator<<(std::string_view text)
    {
        const std::size_t n = text.size() < sizeof(bytes_) - size_ ? text.size() : sizeof(bytes_) - size_;
        std::memcpy(bytes_ + size_, text.data(), n);
        size_ += n;
        return *this;
    }
    short_text& operator<<(std::uint64_t value)
    {
        char digits[20];
        const char* end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
        return *this << std::string_view(digits, static_cast<std::size_t>(end - digits));
    }
    std::string_view view() const { return std::string_view(bytes_, size_); }

private:
    char bytes_[64];
    std::size_t size_ = 0;
};

inline void append_decimal(std::string& out, std::uint64_t value)
{
    short_text text;
    text << value;
    out += text.view();
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
