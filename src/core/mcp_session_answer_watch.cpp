#include "mcp_session/answer_watch.hpp"
#include "mcp_session/text.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace mcp_session {
namespace {

// SAX events of one JSON text, possibly cut short, looking only at the
// members of message objects (the top-level object, or each object of a
// top-level array) and one level below: "error":{"code":N} and
// "result":{"isError":true}. Nothing is built: the parse costs no tree.
class failure_finder {
public:
    using json = nlohmann::json;

    failure_finder(bool tools_call, error_counts& counts) : tools_call_(tools_call), counts_(counts) {}

    bool null() { return value(); }
    bool boolean(bool v)
    {
        if (v && in_member(member::result) && inner_ == inner::is_error) {
            tool_error_ = true;
        }
        return value();
    }
    bool number_integer(json::number_integer_t v)
    {
        if (in_member(member::error) && inner_ == inner::code) {
            code_ = v;
            has_code_ = true;
        }
        return value();
    }
    bool number_unsigned(json::number_unsigned_t) { return value(); }  // a positive code: "other"
    bool number_float(json::number_float_t, const json::string_t&) { return value(); }
    bool string(json::string_t&) { return value(); }
    bool binary(json::binary_t&) { return value(); }

    bool start_object(std::size_t)
    {
        ++depth_;
        if (depth_ == 1 || (depth_ == 2 && top_is_array_)) {
            begin_message();
        } else if (depth_ == message_depth_ + 1 && in_message_) {
            if (member_ == member::error) {
                in_error_ = saw_error_ = true;
            } else if (member_ == member::result) {
                in_result_ = true;
            }
        }
        return true;
    }
    bool key(json::string_t& k)
    {
        if (!in_message_) {
            return true;
        }
        if (depth_ == message_depth_) {
            member_ = k == "error" ? member::error : k == "result" ? member::result : member::none;
            names_method_ = names_method_ || k == "method";
        } else if (depth_ == message_depth_ + 1) {
            inner_ = k == "code" ? inner::code : k == "isError" ? inner::is_error : inner::none;
        }
        return true;
    }
    bool end_object()
    {
        if (in_message_ && depth_ == message_depth_) {
            end_message();
        } else if (in_message_ && depth_ == message_depth_ + 1) {
            in_error_ = in_result_ = false;
            member_ = member::none;
        }
        --depth_;
        return true;
    }
    bool start_array(std::size_t)
    {
        ++depth_;
        if (depth_ == 1) {
            top_is_array_ = true;
        }
        return true;
    }
    bool end_array()
    {
        --depth_;
        return true;
    }
    // The text ends (cut at the prefix) or is not JSON: what the open
    // message has shown so far still counts.
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&)
    {
        if (in_message_) {
            end_message();
        }
        return false;
    }

private:
    enum class member : std::uint8_t { none, error, result };
    enum class inner : std::uint8_t { none, code, is_error };

    bool in_member(member m) const
    {
        return in_message_ && depth_ == message_depth_ + 1 && (m == member::error ? in_error_ : in_result_);
    }

    // A scalar value ends the member or inner member it belonged to.
    bool value()
    {
        if (in_message_ && depth_ == message_depth_) {
            member_ = member::none;
        } else if (in_message_ && depth_ == message_depth_ + 1) {
            inner_ = inner::none;
        }
        return true;
    }

    void begin_message()
    {
        in_message_ = true;
        message_depth_ = depth_;
        member_ = member::none;
        inner_ = inner::none;
        in_error_ = in_result_ = false;
        saw_error_ = has_code_ = tool_error_ = names_method_ = false;
    }

    void end_message()
    {
        if (names_method_) {
            // A request or notification: whatever else it holds, no answer.
        } else if (saw_error_) {
            ++counts_[static_cast<std::size_t>(has_code_ ? error_class_of(code_) : error_class::other)];
        } else if (tools_call_ && tool_error_) {
            ++counts_[static_cast<std::size_t>(error_class::tool_error)];
        }
        in_message_ = false;
    }

    bool tools_call_;
    error_counts& counts_;
    std::size_t depth_ = 0;
    bool top_is_array_ = false;
    bool in_message_ = false;
    std::size_t message_depth_ = 0;
    member member_ = member::none;
    inner inner_ = inner::none;
    bool in_error_ = false;
    bool in_result_ = false;
    bool saw_error_ = false;
    bool has_code_ = false;
    bool tool_error_ = false;
    bool names_method_ = false;
    std::int64_t code_ = 0;
};

// The cheap test before any parse: neither member name appears. One pass
// from quote to quote (most of a text is between them) looks for both.
bool may_report_failure(std::string_view json, bool tools_call)
{
    for (std::size_t q = json.find('"'); q != std::string_view::npos; q = json.find('"', q + 1)) {
        const std::string_view after = json.substr(q + 1);
        if (after.substr(0, 6) == "error\"" || (tools_call && after.substr(0, 8) == "isError\"")) {
            return true;
        }
    }
    return false;
}

}  // namespace

error_counts classify_answer(std::string_view json, bool tools_call)
{
    error_counts counts{};
    json = json.substr(0, answer_watch_prefix);
    if (!may_report_failure(json, tools_call)) {
        return counts;
    }
    failure_finder finder(tools_call, counts);
    // nlohmann's SAX parser keeps its own stack (no recursion), and the
    // prefix bounds the work.
    nlohmann::json::sax_parse(json.begin(), json.end(), &finder);
    return counts;
}

void answer_watch::add(std::string_view json)
{
    const error_counts found = classify_answer(json, tools_call_);
    for (std::size_t i = 0; i < found.size(); ++i) {
        counts_[i] += found[i];
    }
}

void answer_watch::feed(std::string_view piece, bool last)
{
    if (done_) {
        return;
    }
    if (form_ == form::json) {
        feed_json(piece, last);
        return;
    }
    feed_stream(piece);
    if (last) {
        end_line();  // an unterminated last event still counts
        dispatch_event();
        done_ = true;
    }
}

void answer_watch::event_data(std::string_view piece)
{
    if (done_) {
        return;
    }
    piece = piece.substr(0, answer_watch_stream_limit - seen_);
    seen_ += piece.size();
    event_has_data_ = true;
    if (kept_.size() < answer_watch_prefix) {
        kept_.append(piece.substr(0, answer_watch_prefix - kept_.size()));
    }
    if (seen_ >= answer_watch_stream_limit) {
        done_ = true;
        std::string().swap(kept_);
    }
}

void answer_watch::end_event()
{
    if (!done_) {
        dispatch_event();
    }
}

void answer_watch::drop_event()
{
    kept_.clear();
    event_has_data_ = false;
}

void answer_watch::feed_json(std::string_view piece, bool last)
{
    // The common case, the whole prefix in one piece: nothing is copied.
    if (kept_.empty() && (last || piece.size() >= answer_watch_prefix)) {
        add(piece);
        done_ = true;
        return;
    }
    kept_.append(piece.substr(0, answer_watch_prefix - kept_.size()));
    if (last || kept_.size() >= answer_watch_prefix) {
        add(kept_);
        done_ = true;
        std::string().swap(kept_);
    }
}

// SSE as the WHATWG spec parses it: lines end in CR, LF or CRLF; an empty
// line dispatches the event; "data:" lines (one leading space dropped)
// join with LF; comments and other fields are skipped.
void answer_watch::feed_stream(std::string_view piece)
{
    piece = piece.substr(0, answer_watch_stream_limit - seen_);
    seen_ += piece.size();
    std::size_t i = 0;
    while (i < piece.size()) {
        const char c = piece[i];
        if (after_cr_) {
            after_cr_ = false;
            if (c == '\n') {
                ++i;
                continue;  // the LF of a CRLF
            }
        }
        if (c == '\r' || c == '\n') {
            after_cr_ = c == '\r';
            end_line();
            ++i;
            continue;
        }
        if (!in_value_) {
            if (c == ':') {
                in_value_ = true;
                data_line_ = field_ == "data";
                skip_space_ = true;
            } else if (field_.size() < 8) {
                field_.push_back(c);
            } else {
                field_ = "(long)";  // no field of interest is this long
            }
            ++i;
            continue;
        }
        // A value runs to the end of the line: take it in one step.
        std::size_t end = find_line_end(piece, i);
        if (end == std::string_view::npos) {
            end = piece.size();
        }
        std::string_view value = piece.substr(i, end - i);
        if (skip_space_ && !value.empty()) {
            skip_space_ = false;
            if (value.front() == ' ') {
                value.remove_prefix(1);
            }
        }
        if (data_line_ && kept_.size() < answer_watch_prefix) {
            kept_.append(value.substr(0, answer_watch_prefix - kept_.size()));
        }
        i = end;
    }
    if (seen_ >= answer_watch_stream_limit) {
        done_ = true;
        std::string().swap(kept_);
    }
}

void answer_watch::end_line()
{
    if (!in_value_ && field_.empty()) {
        dispatch_event();  // an empty line
        return;
    }
    // "data" with no colon is a data line with an empty value.
    if ((in_value_ && data_line_) || (!in_value_ && field_ == "data")) {
        event_has_data_ = true;
        if (kept_.size() < answer_watch_prefix) {
            kept_.push_back('\n');
        }
    }
    field_.clear();
    in_value_ = data_line_ = skip_space_ = false;
}

void answer_watch::dispatch_event()
{
    if (event_has_data_) {
        add(kept_);  // the trailing LF is whitespace to JSON
    }
    kept_.clear();
    event_has_data_ = false;
}

}  // namespace mcp_session
