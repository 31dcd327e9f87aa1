// A backend's SSE answer to a session's POST, relayed to the client with
// nginx's own event ids, and each of its events handed out for recording
// in the session's ring, so a client whose connection drops resumes the
// stream with GET + Last-Event-ID.
//
// The backend's bytes may be split anywhere (the body filter sees
// buffers of any size): the relay keeps the incomplete tail of a line and
// nothing else, so its memory is bounded by the event size limit.
#pragma once

#include "mcp_session/answer_watch.hpp"
#include "mcp_session/response_scan.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcp_session {

// Where a Last-Event-ID points. The session's standalone stream (its GET
// stream and what the publish endpoint adds) has decimal ids, the
// session's event sequence: "42". The stream answering a POST has "P.k"
// ids: P the POST stream's number in the session (the session event id
// nginx reserved when the stream opened, so never reused), k the event's
// number within that stream (from 1; 0 is nginx's priming event). So every
// id is unique across the session's streams and names its stream, also
// after the ring has moved past it.
struct stream_position {
    std::uint64_t stream = 0;  // 0: the standalone stream
    std::uint64_t index = 0;   // standalone: the event id (0: none yet); POST stream: k
};

// "N" or "P.k", both plain decimals without sign, leading '+' or spaces
// inside, N, P and k fitting 64 bits, P at least 1. Empty or all
// whitespace is the standalone stream at 0 (EventSource sends no header
// before its first id). Surrounding spaces and tabs are ignored. Anything
// else is nullopt (answered 400).
std::optional<stream_position> parse_stream_position(std::string_view last_event_id);

// Appends "P.k".
void append_post_event_id(std::string& out, std::uint64_t stream, std::uint64_t index);

// One event of the backend's stream, ready for the ring.
struct relayed_event {
    std::uint64_t index = 0;  // k
    // The event's field lines except `id:` (and any comment line between
    // them), each ending in "\n" (the backend's CRLF or CR line ends
    // become LF), without the blank line that ends the event: on replay
    // the event is "id: P.k\n" + fields + "\n", byte for byte what the
    // client got live.
    std::string fields;
    // Its data is a JSON-RPC response (an object with "id" and "result"
    // or "error" and no "method", or a batch of them): the answer to the
    // POST, after which the stream has nothing more to say.
    bool response = false;
};

// The events one feed() completes, for the caller to record. Cleared for
// the next call, it keeps its events' strings (within a bound) so that a
// stream under way records its events without allocating.
class relayed_batch {
public:
    relayed_event& add();  // the next event, empty
    void clear();
    std::size_t size() const { return used_; }
    bool empty() const { return used_ == 0; }
    const relayed_event& operator[](std::size_t i) const { return slots_[i]; }
    const relayed_event& back() const { return slots_[used_ - 1]; }  // not empty()
    const relayed_event& at(std::size_t i) const { return slots_.at(i < used_ ? i : slots_.size()); }
    const relayed_event* begin() const { return slots_.data(); }
    const relayed_event* end() const { return slots_.data() + used_; }

    // What clear() keeps for the next call: this many events' strings, of
    // at most this many bytes together (a burst of tiny events, or one of
    // large ones, is not held for the stream's whole life).
    static constexpr std::size_t kept_events = 128;
    static constexpr std::size_t kept_bytes = 64 * 1024;

private:
    std::vector<relayed_event> slots_;
    std::size_t used_ = 0;
};

class sse_relay {
public:
    // `stream`: P. `priming`: the client's revision is 2025-11-25 or later;
    // the client's stream then starts with "id: P.0\ndata: \n\n" unless the
    // backend's own first line is an `id:` field (it primes the stream
    // itself; that event becomes P.1 like any other). `event_max_size`:
    // events whose field lines exceed it in bytes are passed on but not
    // recorded (see oversized()).
    sse_relay(std::uint64_t stream, bool priming, std::size_t event_max_size);

    // Appends to `out` what the client gets for the backend's next bytes
    // `in`, and to `recorded` each event `in` completes that can be
    // recorded. Complete lines go out at once (a live stream must not wait
    // for the end of an event); an incomplete line waits for the next call.
    //
    // Every event (a block of at least one field line, ended by a blank
    // line) gets the next k: its first field line is preceded by nginx's
    // `id: P.k` line and the backend's own `id:` lines are dropped.
    // Comments (":..." lines) and blank lines between events pass
    // unchanged and are not recorded; a comment inside an event is part
    // of it. Every line end the client gets is LF. A UTF-8 byte order mark
    // at the start of the stream goes out first, as it came, and is not
    // part of the first line. The priming event is written when the first
    // line is complete (or held past the size limit).
    //
    // An event larger than event_max_size (one line held that long, or
    // all its field lines together) still gets its k and is passed on,
    // as it arrives, but is not recorded: a resuming client gets a
    // lost-events notice for it instead.
    //
    // Input that is not SSE (a NUL byte, or bytes that are not UTF-8)
    // turns the relay into a pass-through for the rest of the stream: from
    // that byte on (including the held tail of the current line) everything
    // goes out unchanged and nothing more is recorded. No priming event is
    // written for a stream whose first line is not SSE.
    void feed(std::string_view in, std::string& out, relayed_batch& recorded);

    // The backend's answer ended: a held incomplete line goes out as it is
    // (an event without its blank line is never dispatched by a client, so
    // it is not recorded either).
    void finish(std::string& out);

    // The relay hands each event's data to `watch` (event_data, end_event)
    // as it reads it, so the answer is parsed once; null: none. A stream
    // that turns into a pass-through is no longer watched.
    void watch_answer(answer_watch* watch) { watch_ = watch; }

    std::uint64_t next_index() const { return next_index_; }  // k of the next event
    std::size_t oversized() const { return oversized_; }      // events passed on, not recorded
    std::size_t held() const { return line_.size(); }  // bytes held between calls: at most event_max_size + 8
    bool passthrough() const { return passthrough_; }
    bool responded() const { return responded_; }  // a recorded or oversized event was the response

private:
    enum class line_kind : std::uint8_t { undecided, comment, id, data, other };

    const char* scan_text(const char* p, const char* end, bool& invalid);
    void on_line(std::string_view line, std::string& out, relayed_batch& recorded);
    void hold(std::string_view piece, std::string& out);
    void begin_streaming(std::string& out);
    void stream_piece(std::string_view piece, std::string& out);
    void start(bool backend_primes, std::string& out);
    void begin_event(std::string& out);
    void begin_data();
    void take_data(std::string_view piece);
    void end_watched_event();
    void mark_oversized();
    void end_event(std::string& out, relayed_batch& recorded);
    void to_passthrough(std::string_view line_part, std::string_view rest, std::string& out);

    std::uint64_t stream_;
    bool priming_;
    std::size_t event_max_size_;
    bool started_ = false;         // the first line has been seen (priming decided)
    bool passthrough_ = false;
    bool responded_ = false;
    bool after_cr_ = false;        // the last byte was CR: an LF right after it ends nothing
    bool in_event_ = false;        // a field line of the current event went out
    bool event_oversized_ = false;
    bool line_oversized_ = false;  // the held line outgrew the limit: its bytes go out as they come
    line_kind streamed_ = line_kind::undecided;  // what that line is
    bool data_space_pending_ = false;  // it is a data line that ended at its ':' so far
    bool event_has_data_ = false;
    std::uint8_t utf8_pending_ = 0;  // continuation bytes still owed by a multi-byte UTF-8 sequence
    std::uint8_t utf8_low_ = 0x80;   // the range of the next one (overlongs, surrogates, > U+10FFFF are not)
    std::uint8_t utf8_high_ = 0xbf;
    std::uint64_t next_index_ = 1;
    std::size_t oversized_ = 0;
    std::string line_;       // the incomplete line held between calls
    relayed_event event_;    // the event being collected
    response_scan response_; // its data lines joined by "\n", read as they come
    answer_watch* watch_ = nullptr;  // ... and handed to it
};

// A lost-events notice on a POST stream, in the form the stream's clients
// skip (sse_wire's append_lagged): `dropped` events up to P.`last_lost_index`
// can no longer be sent.
void append_post_stream_lagged(std::string& out, bool seed_vocabulary, bool priming, std::uint64_t stream,
                               std::uint64_t last_lost_index, std::uint64_t dropped);

}  // namespace mcp_session
