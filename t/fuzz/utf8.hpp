// Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
// U+10FFFF), for targets that compare text nginx echoes with its input.
#pragma once

#include <cstddef>
#include <string_view>

// Where the first byte that no well-formed sequence can hold stands (a
// bad lead byte, or the continuation byte that breaks its sequence);
// npos when there is none. A sequence the end of `s` cuts short is not
// judged: npos, with `cut` set.
inline std::size_t utf8_error_at(std::string_view s, bool& cut)
{
    cut = false;
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        unsigned char lo = 0x80;
        unsigned char hi = 0xBF;
        if (b0 < 0x80) {
            ++i;
            continue;
        } else if (b0 >= 0xC2 && b0 <= 0xDF) {
            len = 2;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            len = 3;
            lo = b0 == 0xE0 ? 0xA0 : 0x80;
            hi = b0 == 0xED ? 0x9F : 0xBF;
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            len = 4;
            lo = b0 == 0xF0 ? 0x90 : 0x80;
            hi = b0 == 0xF4 ? 0x8F : 0xBF;
        } else {
            return i;
        }
        for (std::size_t k = 1; k < len; ++k) {
            if (i + k >= s.size()) {
                cut = true;
                return std::string_view::npos;
            }
            const auto b = static_cast<unsigned char>(s[i + k]);
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
                return i + k;
            }
        }
        i += len;
    }
    return std::string_view::npos;
}

inline bool is_valid_utf8(std::string_view s)
{
    bool cut = false;
    return utf8_error_at(s, cut) == std::string_view::npos && !cut;
}
