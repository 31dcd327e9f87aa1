// Reads the events of a backend's own standalone SSE stream (the answer to
// the GET nginx holds open for a session), so each message can be recorded
// on the session's stream under nginx's ids. Unlike sse_relay, nothing is
// passed on byte for byte: the reader only collects what an EventSource
// client would dispatch (the WHATWG event stream rules).
//
// Bytes may be split anywhere; the reader keeps at most one incomplete
// line and one event's data, both bounded by the event size limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcp_session {

class sse_reader {
public:
    // Events whose data exceeds `event_max_size` bytes are dropped and
    // counted (oversized()).
    explicit sse_reader(std::size_t event_max_size);

    // Appends to `messages` the data of each `message` (or unnamed) event
    // that `in` completes. Events with no or empty data (a priming event)
    // are no message; events of another type are skipped and
    // counted (a client's onmessage never sees them either).
    void feed(std::string_view in, std::vector<std::string>& messages);

    // The stream's last `id:` (empty: none yet), for the Last-Event-ID of
    // a reopened stream; ids holding NUL are ignored, as the spec says.
    const std::string& last_event_id() const { return last_id_; }
    // The last valid `retry:` in milliseconds, if the backend sent one.
    std::optional<std::uint64_t> retry_ms() const { return retry_; }
    std::size_t oversized() const { return oversized_; }
    std::size_t skipped() const { return skipped_; }
    std::size_t held() const { return line_.size() + data_.size(); }  // bytes kept between calls

private:
    void on_line(std::string_view line, std::vector<std::string>& messages);
    void dispatch(std::vector<std::string>& messages);

    std::size_t event_max_size_;
    bool started_ = false;   // the BOM check is done
    bool after_cr_ = false;  // the last byte was CR: an LF right after it ends no line
    bool line_too_long_ = false;
    bool event_too_long_ = false;
    std::string line_;
    std::string data_;
    bool has_data_ = false;
    std::string type_;
    std::string last_id_;
    std::optional<std::uint64_t> retry_;
    std::size_t oversized_ = 0;
    std::size_t skipped_ = 0;
};

}  // namespace mcp_session
