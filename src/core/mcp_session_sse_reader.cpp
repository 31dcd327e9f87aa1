#include "mcp_session/sse_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace mcp_session {
namespace {

// Field names and the small values nginx keeps (event type, id) need no
// more than this; a longer one is no field nginx acts on.
constexpr std::size_t max_short_field = 1024;

constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

}  // namespace

sse_reader::sse_reader(std::size_t event_max_size) : event_max_size_(event_max_size) {}

void sse_reader::feed(std::string_view in, std::vector<std::string>& messages)
{
    if (!started_) {
        // The BOM may itself arrive split: hold bytes until it is decided.
        const std::size_t wanted = utf8_bom.size() - line_.size();
        const std::string_view head = in.substr(0, wanted);
        line_.append(head);
        in.remove_prefix(head.size());
        if (line_.size() < utf8_bom.size() && utf8_bom.substr(0, line_.size()) == line_) {
            return;  // still a prefix of the BOM
        }
        started_ = true;
        std::string held;
        held.swap(line_);
        if (held == utf8_bom) {
            held.clear();
        }
        feed(held, messages);
    }
    const char* p = in.data();
    const char* end = p + in.size();
    while (p < end) {
        if (after_cr_ && *p == '\n') {
            after_cr_ = false;
            ++p;
            continue;
        }
        after_cr_ = false;
        const char* stop = p;
        while (stop < end && *stop != '\n' && *stop != '\r') {
            ++stop;
        }
        const std::size_t piece = static_cast<std::size_t>(stop - p);
        if (!line_too_long_) {
            if (line_.size() + piece > event_max_size_ + max_short_field) {
                line_too_long_ = true;  // its bytes are dropped as they come
                line_.clear();
            } else {
                line_.append(p, piece);
            }
        }
        p = stop;
        if (p == end) {
            break;  // the line goes on in the next call
        }
        after_cr_ = *p == '\r';
        ++p;
        if (line_too_long_) {
            event_too_long_ = true;  // whatever it was, the event cannot be kept whole
            line_too_long_ = false;
        } else {
            on_line(line_, messages);
        }
        line_.clear();
    }
}

void sse_reader::on_line(std::string_view line, std::vector<std::string>& messages)
{
    if (line.empty()) {
        dispatch(messages);
        return;
    }
    if (line.front() == ':') {
        return;  // a comment (heartbeats often are)
    }
    const std::size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
    }
    if (name == "data") {
        if (data_.size() + value.size() + 1 > event_max_size_) {
            event_too_long_ = true;
            data_.clear();
        }
        if (!event_too_long_) {
            if (has_data_) {
                data_ += '\n';
            }
            data_.append(value);
        }
        has_data_ = true;
    } else if (name == "event") {
        type_.assign(value.substr(0, max_short_field));
    } else if (name == "id") {
        if (value.find('\0') == std::string_view::npos && value.size() <= max_short_field) {
            last_id_.assign(value);
        }
    } else if (name == "retry") {
        std::uint64_t ms = 0;
        const auto parsed = std::from_chars(value.data(), value.data() + value.size(), ms);
        if (!value.empty() && parsed.ec == std::errc() && parsed.ptr == value.data() + value.size()) {
            retry_ = ms;
        }
    }
}

void sse_reader::dispatch(std::vector<std::string>& messages)
{
    if (event_too_long_) {
        ++oversized_;
    } else if (has_data_ && !type_.empty() && type_ != "message") {
        ++skipped_;
    } else if (!data_.empty()) {
        messages.push_back(std::move(data_));  // empty data (a priming event) is no message
    }
    data_.clear();
    has_data_ = false;
    type_.clear();
    event_too_long_ = false;
}

}  // namespace mcp_session
