#include "mcp_session/response_scan.hpp"

#include <cstring>

namespace mcp_session {
namespace {

constexpr std::string_view literals[] = {"true", "false", "null"};

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// Eight string bytes at once without a quote, a backslash or a control
// character (UTF-8 bytes pass): the common run of a string's text.
bool plain_string8(const char* p)
{
    std::uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t high = 0x8080808080808080ull;
    const auto has_zero = [](std::uint64_t w) { return (w - ones) & ~w & high; };
    const std::uint64_t below_space = (word - ones * 0x20) & ~word & high;
    return (below_space | has_zero(word ^ (ones * '"')) | has_zero(word ^ (ones * '\\'))) == 0;
}

// The escapes JSON has besides \u, as the character each stands for.
char simple_escape(char c)
{
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return 0;
    }
}

}  // namespace

void response_scan::key_byte(char c)
{
    if (!capture_ || key_length_ == too_long) {
        return;
    }
    if (key_length_ == sizeof(key_)) {
        key_length_ = too_long;
        return;
    }
    key_[key_length_++] = c;
}

// The bulk of a text is string bytes: skipped in a tight loop.
const char* response_scan::scan_string(const char* p, const char* end)
{
    if (!capture_) {
        while (end - p >= 8 && plain_string8(p)) {
            p += 8;
        }
        while (p < end && *p != '"' && *p != '\\' && static_cast<unsigned char>(*p) >= 0x20) {
            ++p;
        }
        return p;
    }
    while (p < end && *p != '"' && *p != '\\' && static_cast<unsigned char>(*p) >= 0x20) {
        key_byte(*p++);
    }
    return p;
}

void response_scan::end_value() { state_ = depth_ == 0 ? state::done : state::after_value; }

void response_scan::end_key()
{
    state_ = state::colon;
    if (!capture_) {
        return;
    }
    if (key_length_ == too_long) {
        return;
    }
    const std::string_view key(key_, key_length_);
    if (key == "method") {
        state_ = state::rejected;  // a request or notification
        names_a_method_ = !top_array_;
    } else if (key == "id") {
        has_id_ = true;
    } else if (key == "result" || key == "error") {
        has_answer_ = true;
    }
}

void response_scan::open(bool array)
{
    if (depth_ == max_depth) {
        state_ = state::rejected;
        return;
    }
    if (depth_ == 0) {
        top_array_ = array;
    }
    std::uint64_t& word = arrays_[depth_ / 64];
    const std::uint64_t bit = std::uint64_t{1} << (depth_ % 64);
    word = array ? (word | bit) : (word & ~bit);
    ++depth_;
    if (!array && at_message()) {
        has_id_ = has_answer_ = false;
    }
    state_ = array ? state::array_first : state::object_first;
}

void response_scan::close(bool array)
{
    if (in_array() != array) {
        state_ = state::rejected;
        return;
    }
    if (!array && at_message()) {
        if (!has_id_ || !has_answer_) {
            state_ = state::rejected;
            return;
        }
        batch_nonempty_ = true;
    } else if (array && depth_ == 1 && !batch_nonempty_) {
        state_ = state::rejected;  // an empty batch answers nothing
        return;
    }
    --depth_;
    end_value();
}

void response_scan::feed(std::string_view text)
{
    const char* p = text.data();
    const char* const end = p + text.size();
    while (p < end && state_ != state::rejected) {
        const char c = *p;
        switch (state_) {
        case state::value:
        case state::array_first:
            if (is_space(c)) {
                ++p;
                break;
            }
            if (state_ == state::array_first && c == ']') {
                ++p;
                close(true);
                break;
            }
            // Only an object or a batch of objects can be a response: a
            // scalar or array where a message stands settles it.
            if ((depth_ == 0 && c != '{' && c != '[') || (depth_ == 1 && top_array_ && c != '{')) {
                state_ = state::rejected;
                break;
            }
            ++p;
            if (c == '{' || c == '[') {
                open(c == '[');
            } else if (c == '"') {
                string_is_key_ = false;
                capture_ = false;
                state_ = state::string;
            } else if (c == '-' || is_digit(c)) {
                number_ = c == '-' ? number_part::minus : c == '0' ? number_part::zero : number_part::integer;
                state_ = state::number;
            } else if (c == 't' || c == 'f' || c == 'n') {
                literal_ = c == 't' ? 0 : c == 'f' ? 1 : 2;
                literal_pos_ = 1;
                state_ = state::literal;
            } else {
                state_ = state::rejected;
            }
            break;
        case state::object_first:
        case state::key:
            if (is_space(c)) {
                ++p;
            } else if (c == '"') {
                ++p;
                string_is_key_ = true;
                capture_ = at_message();
                key_length_ = 0;
                state_ = state::string;
            } else if (state_ == state::object_first && c == '}') {
                ++p;
                close(false);
            } else {
                state_ = state::rejected;
            }
            break;
        case state::colon:
            if (is_space(c)) {
                ++p;
            } else if (c == ':') {
                ++p;
                state_ = state::value;
            } else {
                state_ = state::rejected;
            }
            break;
        case state::after_value:
            ++p;
            if (is_space(c)) {
                break;
            }
            if (c == ',') {
                state_ = in_array() ? state::value : state::key;
            } else if (c == ']' || c == '}') {
                close(c == ']');
            } else {
                state_ = state::rejected;
            }
            break;
        case state::string:
            p = scan_string(p, end);
            if (p == end) {
                break;
            }
            if (*p == '"') {
                ++p;
                if (string_is_key_) {
                    end_key();
                } else {
                    end_value();
                }
            } else if (*p == '\\') {
                ++p;
                state_ = state::escape;
            } else {
                state_ = state::rejected;  // a raw control character
            }
            break;
        case state::escape:
            ++p;
            if (c == 'u') {
                hex_left_ = 4;
                hex_value_ = 0;
                state_ = state::hex;
            } else if (const char meant = simple_escape(c)) {
                key_byte(meant);
                state_ = state::string;
            } else {
                state_ = state::rejected;
            }
            break;
        case state::hex: {
            ++p;
            const int digit = hex_digit(c);
            if (digit < 0) {
                state_ = state::rejected;
                break;
            }
            hex_value_ = static_cast<std::uint16_t>(hex_value_ << 4 | digit);
            if (--hex_left_ == 0) {
                // An escaped non-ASCII character is in no key that matters.
                if (hex_value_ < 0x80) {
                    key_byte(static_cast<char>(hex_value_));
                } else if (capture_) {
                    key_length_ = too_long;
                }
                state_ = state::string;
            }
            break;
        }
        case state::number: {
            // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, ended by the first other byte.
            const bool digit = is_digit(c);
            number_part next = number_;
            bool ends = false;
            switch (number_) {
            case number_part::minus:
                next = c == '0' ? number_part::zero : digit ? number_part::integer : number_;
                ends = !digit;
                break;
            case number_part::zero:
            case number_part::integer:
            case number_part::fraction:
                if (digit && number_ != number_part::zero) {
                    // more of the same part
                } else if (c == '.' && number_ != number_part::fraction) {
                    next = number_part::dot;
                } else if (c == 'e' || c == 'E') {
                    next = number_part::exponent;
                } else {
                    ends = true;
                }
                break;
            case number_part::exponent:
                if (c == '+' || c == '-') {
                    next = number_part::exponent_sign;
                    break;
                }
                [[fallthrough]];
            case number_part::dot:
            case number_part::exponent_sign:
            case number_part::exponent_digits:
                // Digits must come: the fraction's, or the exponent's.
                next = number_ == number_part::dot ? number_part::fraction : number_part::exponent_digits;
                ends = !digit;
                break;
            }
            if (!ends) {
                number_ = next;
                ++p;
                break;
            }
            // The byte after the number is the next token's: read it again.
            const bool complete = number_ == number_part::zero || number_ == number_part::integer ||
                                  number_ == number_part::fraction || number_ == number_part::exponent_digits;
            if (complete) {
                end_value();
            } else {
                state_ = state::rejected;
            }
            break;
        }
        case state::literal: {
            const std::string_view word = literals[literal_];
            if (c != word[literal_pos_]) {
                state_ = state::rejected;
                break;
            }
            ++p;
            if (++literal_pos_ == word.size()) {
                end_value();
            }
            break;
        }
        case state::done:
            ++p;
            if (!is_space(c)) {
                state_ = state::rejected;
            }
            break;
        case state::rejected:
            break;
        }
    }
}

}  // namespace mcp_session
