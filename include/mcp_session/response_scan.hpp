// Whether a JSON text, read in pieces as it arrives, is a JSON-RPC
// response. It runs on the data of every event of every POST stream, so it
// reads each byte once, looks only at the top-level keys of each message,
// builds nothing and holds a fixed, small state whatever the text's size
// (an event too large to record is still checked, as it passes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mcp_session {

class response_scan {
public:
    // Deeper texts are not responses to us (the state is a bit per level).
    static constexpr std::size_t max_depth = 1024;

    // The next bytes of the text (valid UTF-8: the relay checked it).
    void feed(std::string_view text);

    // The text fed so far, if it ends here, is an object with "id" and
    // "result" or "error" and no "method", or a non-empty array of such
    // objects, and is valid JSON (RFC 8259's grammar, which allows lone
    // surrogate escapes as JSON.parse does). Anything else, JSON or not,
    // is not a response.
    bool response() const { return state_ == state::done; }

    // The text is an object with a "method" member: a request or a
    // notification, never an answer, whatever follows.
    bool names_a_method() const { return names_a_method_; }

    void reset() { *this = response_scan(); }

private:
    enum class state : std::uint8_t {
        value,        // a value must come
        array_first,  // after '[': a value or ']'
        object_first, // after '{': a key or '}'
        key,          // after ',' in an object: a key
        colon,
        after_value,  // ',' or the container's end
        string,
        escape,       // after '\' in a string
        hex,          // inside \uXXXX
        number,
        literal,
        done,         // a response ended: only whitespace may follow
        rejected,     // not a response, whatever follows
    };
    enum class number_part : std::uint8_t { minus, zero, integer, dot, fraction, exponent, exponent_sign, exponent_digits };

    static constexpr std::uint8_t too_long = 0xff;

    void key_byte(char c);
    const char* scan_string(const char* p, const char* end);
    void end_value();
    void end_key();
    void open(bool array);
    void close(bool array);
    bool in_array() const { return (arrays_[(depth_ - 1) / 64] >> ((depth_ - 1) % 64)) & 1u; }
    bool at_message() const { return depth_ == (top_array_ ? 2u : 1u); }

    state state_ = state::value;
    number_part number_ = number_part::minus;
    bool top_array_ = false;
    bool string_is_key_ = false;
    bool capture_ = false;   // the key being read is one of a message's own
    bool has_id_ = false;    // the open message's keys so far
    bool has_answer_ = false;
    bool batch_nonempty_ = false;
    bool names_a_method_ = false;
    std::uint8_t literal_ = 0;       // which of true, false, null
    std::uint8_t literal_pos_ = 0;   // its bytes matched so far
    std::uint8_t hex_left_ = 0;
    std::uint8_t key_length_ = 0;    // key_ bytes, or too_long
    char key_[7] = {};               // the longest key that matters has 6
    std::uint16_t hex_value_ = 0;
    std::uint16_t depth_ = 0;
    std::uint64_t arrays_[max_depth / 64] = {};  // bit per open level: an array
};

}  // namespace mcp_session
