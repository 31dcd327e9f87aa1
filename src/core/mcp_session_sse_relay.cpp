#include "mcp_session/sse_relay.hpp"
#include "mcp_session/sse_wire.hpp"
#include "mcp_session/text.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mcp_session {
namespace {

constexpr std::string_view byte_order_mark = "\xEF\xBB\xBF";

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

struct field {
    std::string_view name;
    std::string_view value;
    bool value_at_end = false;  // the line (so far) ends at the ':', so a space may still come
};

// "name:value", "name: value" (one space dropped) or "name".
field split_field(std::string_view line)
{
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
        return {line, {}, false};
    }
    std::string_view value = line.substr(colon + 1);
    const bool at_end = value.empty();
    if (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
    }
    return {line.substr(0, colon), value, at_end};
}

// Eight bytes of printable ASCII (no line end, NUL or UTF-8 sequence),
// tested at once: the usual backend byte needs no more.
bool plain_ascii8(const char* p)
{
    std::uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    constexpr std::uint64_t high = 0x8080808080808080ull;
    // A byte >= 0x80, or (with none of those) a byte < 0x20.
    return ((word & high) | ((word - ones * 0x20) & ~word & high)) == 0;
}

// The first byte from `p` that is not printable ASCII (a line end, a
// control byte or part of a UTF-8 sequence), or where fewer than eight
// bytes are left. SSE2 (every x86-64) takes 16 bytes per compare: as
// signed bytes, those from 0x80 are negative, so one "less than 0x20"
// finds both kinds.
const char* skip_plain_ascii(const char* p, const char* end)
{
#if defined(__SSE2__)
    const __m128i space = _mm_set1_epi8(0x20);
    // 64 bytes per test while none stops (most of a payload); the block
    // that has a stop is found 16 bytes at a time below.
    while (end - p >= 64) {
        const auto below = [&](int at) {
            return _mm_cmplt_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at)), space);
        };
        const __m128i any = _mm_or_si128(_mm_or_si128(below(0), below(16)), _mm_or_si128(below(32), below(48)));
        if (_mm_movemask_epi8(any) != 0) {
            break;
        }
        p += 64;
    }
    while (end - p >= 16) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const int stops = _mm_movemask_epi8(_mm_cmplt_epi8(bytes, space));
        if (stops != 0) {
            return p + __builtin_ctz(static_cast<unsigned>(stops));
        }
        p += 16;
    }
#endif
    while (end - p >= 8 && plain_ascii8(p)) {
        p += 8;
    }
    return p;
}

void make_room(std::string& out, std::size_t more)
{
    const std::size_t need = out.size() + more;
    if (need > out.capacity()) {
        out.reserve(std::max(need, 2 * out.capacity()));
    }
}

}  // namespace

std::optional<stream_position> parse_stream_position(std::string_view last_event_id)
{
    const std::string_view raw = trim_ows(last_event_id);
    if (raw.empty()) {
        return stream_position{};
    }
    const std::size_t dot = raw.find('.');
    if (dot == std::string_view::npos) {
        const auto id = parse_decimal_u64(raw);
        return id ? std::optional<stream_position>(stream_position{0, *id}) : std::nullopt;
    }
    const auto stream = parse_decimal_u64(raw.substr(0, dot));
    const auto index = parse_decimal_u64(raw.substr(dot + 1));
    if (!stream || *stream == 0 || !index) {
        return std::nullopt;
    }
    return stream_position{*stream, *index};
}

void append_post_event_id(std::string& out, std::uint64_t stream, std::uint64_t index)
{
    append_decimal(out, stream);
    out += '.';
    append_decimal(out, index);
}

void append_post_stream_lagged(std::string& out, bool seed_vocabulary, bool priming, std::uint64_t stream,
                               std::uint64_t last_lost_index, std::uint64_t dropped)
{
    short_text id;  // under the zone lock: no heap allocation
    id << stream << "." << last_lost_index;
    wire_form form;
    form.vocabulary = seed_vocabulary ? stream_vocabulary::seed : stream_vocabulary::compatible;
    form.priming = priming;
    append_lagged(out, form, id.view(), dropped);
}

relayed_event& relayed_batch::add()
{
    if (used_ == slots_.size()) {
        slots_.emplace_back();
    }
    relayed_event& event = slots_[used_++];
    event.index = 0;
    event.fields.clear();  // its capacity stays
    event.response = false;
    return event;
}

void relayed_batch::clear()
{
    used_ = 0;
    if (slots_.size() > kept_events) {
        slots_.resize(kept_events);
    }
    std::size_t kept = 0;
    for (relayed_event& event : slots_) {
        kept += event.fields.capacity();
        if (kept > kept_bytes) {
            kept -= event.fields.capacity();
            std::string().swap(event.fields);
        }
    }
}

sse_relay::sse_relay(std::uint64_t stream, bool priming, std::size_t event_max_size)
    : stream_(stream), priming_(priming), event_max_size_(event_max_size)
{
}

// The first byte from `p` that ends a line (CR, LF) or is not SSE text (a
// NUL, or not UTF-8: `invalid` is set); `end` when there is none.
const char* sse_relay::scan_text(const char* p, const char* end, bool& invalid)
{
    while (p < end) {
        if (utf8_pending_ == 0) {
            p = skip_plain_ascii(p, end);
            if (p == end) {
                break;
            }
        }
        const auto c = static_cast<unsigned char>(*p);
        if (utf8_pending_ != 0) {
            if (c < utf8_low_ || c > utf8_high_) {
                invalid = true;
                return p;
            }
            utf8_low_ = 0x80;
            utf8_high_ = 0xbf;
            --utf8_pending_;
        } else if (c == '\n' || c == '\r') {
            return p;
        } else if (c == 0) {
            invalid = true;
            return p;
        } else if (c >= 0x80) {
            // The lead byte decides the range of the next one: no overlong
            // form (C0, C1, E0 80-9F, F0 80-8F), no surrogate (ED A0-BF),
            // nothing above U+10FFFF (F4 90-BF, F5-FF).
            if (c < 0xc2 || c > 0xf4) {
                invalid = true;
                return p;
            }
            if (c < 0xe0) {
                utf8_pending_ = 1;
            } else if (c < 0xf0) {
                utf8_pending_ = 2;
                utf8_low_ = c == 0xe0 ? 0xa0 : 0x80;
                utf8_high_ = c == 0xed ? 0x9f : 0xbf;
            } else {
                utf8_pending_ = 3;
                utf8_low_ = c == 0xf0 ? 0x90 : 0x80;
                utf8_high_ = c == 0xf4 ? 0x8f : 0xbf;
            }
        }
        ++p;
    }
    return end;
}

void sse_relay::feed(std::string_view in, std::string& out, relayed_batch& recorded)
{
    if (passthrough_) {
        out.append(in);
        return;
    }
    make_room(out, in.size() + 64);
    const char* p = in.data();
    const char* const end = p + in.size();
    if (after_cr_ && p < end) {
        after_cr_ = false;
        if (*p == '\n') {
            ++p;  // the LF of a CRLF split between two calls
        }
    }
    while (p < end) {
        bool invalid = false;
        const char* const stop = scan_text(p, end, invalid);
        const std::string_view piece(p, static_cast<std::size_t>(stop - p));
        if (invalid) {
            to_passthrough(piece, std::string_view(stop, static_cast<std::size_t>(end - stop)), out);
            return;
        }
        if (stop == end) {
            hold(piece, out);
            return;
        }
        if (line_oversized_) {
            stream_piece(piece, out);
            if (streamed_ != line_kind::id) {
                out += '\n';
            }
            line_oversized_ = false;
        } else if (line_.empty()) {
            on_line(piece, out, recorded);  // the usual case: the whole line is in `in`, never copied
        } else {
            line_.append(piece);
            on_line(line_, out, recorded);
            line_.clear();
        }
        p = stop + 1;
        if (*stop == '\r') {
            if (p == end) {
                after_cr_ = true;
            } else if (*p == '\n') {
                ++p;
            }
        }
    }
}

void sse_relay::finish(std::string& out)
{
    if (passthrough_) {
        return;
    }
    if (watch_ != nullptr) {
        // An event the body ends without its blank line: a client never
        // dispatches it, but an error in it still counts.
        if (!line_oversized_ && !line_.empty() && line_.front() != ':') {
            const field f = split_field(line_);
            if (f.name == "data") {
                begin_data();
                take_data(f.value);
            }
        }
        end_watched_event();
    }
    if (!line_oversized_) {
        out += line_;
    }
    line_.clear();
    line_oversized_ = false;
}

void sse_relay::start(bool backend_primes, std::string& out)
{
    started_ = true;
    if (priming_ && !backend_primes) {
        out += "id: ";
        append_post_event_id(out, stream_, 0);
        out += "\ndata: \n\n";
    }
}

void sse_relay::begin_event(std::string& out)
{
    out += "id: ";
    append_post_event_id(out, stream_, next_index_);
    out += '\n';
    event_.index = next_index_++;
    in_event_ = true;
}

// SSE joins an event's data lines with LF.
void sse_relay::begin_data()
{
    if (event_has_data_) {
        take_data("\n");
    }
    event_has_data_ = true;
}

void sse_relay::take_data(std::string_view piece)
{
    response_.feed(piece);
    // A request or notification counts nothing: the watch need not see it.
    if (watch_ != nullptr && !response_.names_a_method()) {
        watch_->event_data(piece);
    }
}

void sse_relay::end_watched_event()
{
    if (response_.names_a_method()) {
        watch_->drop_event();
    } else {
        watch_->end_event();
    }
}

void sse_relay::mark_oversized()
{
    if (!event_oversized_) {
        event_oversized_ = true;
        event_.fields.clear();
    }
}

void sse_relay::on_line(std::string_view line, std::string& out, relayed_batch& recorded)
{
    if (!started_) {
        if (starts_with(line, byte_order_mark)) {
            out += byte_order_mark;
            line.remove_prefix(byte_order_mark.size());
        }
        start(!line.empty() && line.front() != ':' && split_field(line).name == "id", out);
    }
    if (line.empty()) {
        if (in_event_) {
            end_event(out, recorded);
        } else {
            out += '\n';
        }
        return;
    }
    const bool comment = line.front() == ':';
    if (comment && !in_event_) {
        out += line;
        out += '\n';
        return;
    }
    if (!in_event_) {
        begin_event(out);
    }
    if (!comment) {
        const field f = split_field(line);
        if (f.name == "id") {
            return;  // nginx's id stands instead
        }
        if (f.name == "data") {
            begin_data();
            take_data(f.value);
        }
    }
    out += line;
    out += '\n';
    if (!event_oversized_) {
        if (event_.fields.size() + line.size() + 1 > event_max_size_) {
            mark_oversized();
        } else {
            event_.fields += line;
            event_.fields += '\n';
        }
    }
}

void sse_relay::end_event(std::string& out, relayed_batch& recorded)
{
    out += '\n';
    const bool response = response_.response();
    if (event_oversized_) {
        ++oversized_;
    } else {
        // A copy: event_ keeps its buffer for the next event, and the
        // batch's string has room for it from an earlier call.
        relayed_event& done = recorded.add();
        done.index = event_.index;
        done.fields.assign(event_.fields);
        done.response = response;
    }
    responded_ = responded_ || response;
    if (watch_ != nullptr) {
        end_watched_event();
    }
    in_event_ = false;
    event_oversized_ = false;
    event_has_data_ = false;
    event_.fields.clear();
    response_.reset();
}

// An incomplete line: held, unless holding it would pass the event size
// limit; then it goes out as it comes, as soon as its kind is known.
void sse_relay::hold(std::string_view piece, std::string& out)
{
    if (line_oversized_) {
        stream_piece(piece, out);
        return;
    }
    line_.append(piece);
    const std::size_t mark = !started_ && starts_with(line_, byte_order_mark) ? byte_order_mark.size() : 0;
    if (event_oversized_ || event_.fields.size() + (line_.size() - mark) + 1 > event_max_size_) {
        begin_streaming(out);
    }
}

void sse_relay::begin_streaming(std::string& out)
{
    std::string_view line = line_;
    if (!started_) {
        if (line.size() < byte_order_mark.size() && starts_with(byte_order_mark, line)) {
            return;  // a mark, or the first bytes of a line: the next byte tells
        }
        if (starts_with(line, byte_order_mark)) {
            line.remove_prefix(byte_order_mark.size());
        }
    }
    line_kind kind = line_kind::other;
    field f;
    if (line.empty()) {
        return;
    }
    if (line.front() == ':') {
        kind = line_kind::comment;
    } else {
        f = split_field(line);
        if (f.name.size() == line.size() && (starts_with("id", line) || starts_with("data", line))) {
            return;  // "i", "da", "id"...: the name may still become id or data
        }
        kind = f.name == "id" ? line_kind::id : f.name == "data" ? line_kind::data : line_kind::other;
    }
    if (!started_) {
        if (line.size() < line_.size()) {
            out += byte_order_mark;
        }
        start(kind == line_kind::id, out);
    }
    line_oversized_ = true;
    streamed_ = kind;
    data_space_pending_ = false;
    if (kind != line_kind::comment || in_event_) {
        if (!in_event_) {
            begin_event(out);
        }
        if (kind != line_kind::id) {
            mark_oversized();  // an id line is dropped: it takes no room in the event
        }
    }
    if (kind != line_kind::id) {
        out += line;
    }
    if (kind == line_kind::data) {
        begin_data();
        take_data(f.value);
        data_space_pending_ = f.value_at_end;
    }
    line_.clear();
}

void sse_relay::stream_piece(std::string_view piece, std::string& out)
{
    if (streamed_ == line_kind::id || piece.empty()) {
        return;
    }
    out += piece;
    if (streamed_ == line_kind::data) {
        if (data_space_pending_) {
            data_space_pending_ = false;
            if (piece.front() == ' ') {
                piece.remove_prefix(1);
            }
        }
        take_data(piece);
    }
}

void sse_relay::to_passthrough(std::string_view line_part, std::string_view rest, std::string& out)
{
    // As if the line's bytes so far had come alone, so where the input was
    // split changes nothing.
    hold(line_part, out);
    if (!line_oversized_) {
        out += line_;
    }
    out += rest;
    passthrough_ = true;
    std::string().swap(line_);
    std::string().swap(event_.fields);
}

}  // namespace mcp_session
