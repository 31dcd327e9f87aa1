// Per-session event rings in the zone: publish, subscribe, read.
#pragma once

#include "ngx_mcp_session_conf.hpp"

#include "mcp_session/event.hpp"
#include "mcp_session/replay.hpp"
#include "mcp_session/session_key.hpp"
#include "mcp_session/shared_events.hpp"
#include "mcp_session/sse_relay.hpp"
#include "mcp_session/sse_wire.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcp_ngx {

enum class publish_result { published, unknown, expired, no_memory };

struct publish_outcome {
    publish_result result = publish_result::unknown;
    std::uint64_t id = 0;
};

enum class stream_state { open, ended, taken_over };

struct read_outcome {
    stream_state state = stream_state::ended;
    std::uint64_t dropped = 0;     // events lost before `first_id` (send `lagged`)
    std::uint64_t first_id = 0;    // first event appended to the output
    std::uint64_t last_id = 0;     // cursor after this read
    std::size_t events = 0;
    std::size_t needed = 0;        // > 0: the next event alone needs an output this large
};

struct subscription {
    std::uint64_t token = 0;   // 0: the session is gone or has no room for a ring
    std::uint64_t newest = 0;  // events up to here were there before: a replay
    std::uint64_t delivered = 0;  // events up to here were sent by a stream: a GET without Last-Event-ID skips them
    mcp_session::unix_ms expires_at = 0;  // unless touched before then
    bool session_gone = false;  // token 0 because the session ended (else: no room)
};

// Every call takes the zone lock once and rings the listener's worker
// (after unlocking) when there is something new for it.
class event_store {
public:
    explicit event_store(zone_conf& zone) : zone_(zone) {}

    // `or_backend_id`: when no session has nginx's id `key`, the session
    // whose backend (issue mode) knows it by this id (nginx's ids win).
    publish_outcome publish(const mcp_session::session_key& key, mcp_session::event_kind kind,
                            std::string_view payload, mcp_session::unix_ms now, std::string_view or_backend_id = {});

    // Makes `worker` the session's only listener; a previous listener is
    // woken to find itself taken over. A zero token: the session is gone
    // (session_gone) or the zone has no room for its ring.
    subscription subscribe(const mcp_session::session_key& key, ngx_int_t worker);

    // `sent`: the stream's events up to here were written (delivered).
    void unsubscribe(const mcp_session::session_key& key, std::uint64_t token, std::uint64_t sent);

    // Appends SSE text (in `form`) for events after `cursor` to `out`,
    // without growing it past its reserved capacity (so no allocation under
    // the lock); events up to `cursor` count as delivered. Events up to `replay_until`
    // count as replayed in the zone's counters.
    read_outcome read(const mcp_session::session_key& key, std::uint64_t token, std::uint64_t cursor,
                      std::uint64_t replay_until, const mcp_session::wire_form& form, std::string& out);

    // The inbox through which publishers name a worker's streams.
    bool open_inbox(ngx_int_t worker);  // false: no room

    // Master, once per configuration cycle: the cycle's number in the zone.
    std::uint64_t begin_cycle();

    // A worker at start takes its number for `cycle`. If a process of the
    // same cycle held it, that process died: its streams are released and
    // counted in `released`, and its pid returned (else 0).
    std::int64_t claim_worker_number(ngx_int_t worker, std::uint64_t cycle, std::int64_t pid, std::size_t& released);

    // Tokens of this worker's streams that have news; true: look at all.
    bool drain(ngx_int_t worker, std::vector<std::uint64_t>& tokens);

    // Removes the session if it has expired by `now` (its stream then ends);
    // otherwise refreshes its idle clock (its stream is open: that is
    // activity) and returns when it will expire. 0: the session is gone.
    mcp_session::unix_ms expire_or_touch(const mcp_session::session_key& key, mcp_session::unix_ms now);

    // A heartbeat of a session's open stream: refreshes its idle clock and
    // counts the beat; false when the session is gone or has expired.
    bool beat(const mcp_session::session_key& key, mcp_session::unix_ms now);

    // POST streams: a backend's SSE answer to a session's POST, recorded
    // in the session's ring (mcp_session/sse_relay.hpp has the id scheme).

    // Opens the recording of a POST stream by `worker`: its number P, or 0
    // when it is not recorded (session gone, no room for the ring, or
    // post_streams_tracked answers of the session still being read).
    std::uint64_t open_post_stream(const mcp_session::session_key& key, ngx_int_t worker, mcp_session::unix_ms now);

    // Records `events` of stream P (the ones that find no room are lost,
    // as a resuming client is told) and wakes the GET resuming it.
    // `next_index`: events up to next_index-1 went to the client.
    void record_post_events(const mcp_session::session_key& key, std::uint64_t stream,
                            const mcp_session::relayed_batch& events, std::uint64_t next_index,
                            mcp_session::unix_ms now);

    // The backend's answer ended, or the request did; `unrecorded`: events
    // passed on but too large to record.
    void close_post_stream(const mcp_session::session_key& key, std::uint64_t stream, std::uint64_t next_index,
                           std::size_t unrecorded);

    // A GET resuming stream P. Token 0 with session_gone: the session
    // ended; token 0 otherwise: P names no stream of the session.
    // `mirrored` (redis=): P may be any node's; what the ring lacks of it
    // arrives by mirror(), and settle_post_stream ends a P nobody recorded.
    subscription subscribe_post_stream(const mcp_session::session_key& key, std::uint64_t stream, ngx_int_t worker,
                                       bool mirrored = false);
    // After the catch-up of a mirrored resume: a P of which the ring holds
    // nothing at all was never recorded (or is long gone); its resume ends.
    void settle_post_stream(const mcp_session::session_key& key, std::uint64_t stream);
    void unsubscribe_post_stream(const mcp_session::session_key& key, std::uint64_t stream, std::uint64_t token);

    // As read(), for stream P after its event `cursor` (k): the stream
    // ends (state ended) once everything up to its response, or up to its
    // last event when the backend's answer ended without one, went out.
    read_outcome read_post_stream(const mcp_session::session_key& key, std::uint64_t stream, std::uint64_t token,
                                  std::uint64_t cursor, const mcp_session::wire_form& form, std::string& out);

    // The backend's own GET stream of a session, held open by one worker
    // process across all workers (ngx_mcp_session_backend_stream.cpp).
    enum class backend_stream_claim { claimed, held_here, held_elsewhere, absent, gone };
    // Makes process `pid` its holder, unless a living process holds it,
    // the backend has none (absent) or the session is gone.
    backend_stream_claim claim_backend_stream(const mcp_session::session_key& key, std::int64_t pid);
    // Ends the claim of `pid`; `absent`: the backend has none (405), so no
    // worker asks again for this session.
    void release_backend_stream(const mcp_session::session_key& key, std::int64_t pid, bool absent);
    // Whether a client stream of the session is open now (on any worker);
    // nullopt when the session is gone or has expired, or (redis=) a GET
    // on another node took its stream over: no grace period is due here.
    std::optional<bool> backend_stream_listened(const mcp_session::session_key& key, mcp_session::unix_ms now);
    // Records messages of the backend's stream on the session's stream,
    // under one lock; those that find no room are dropped and counted, as
    // are `oversized` ones the reader dropped already.
    void record_backend_messages(const mcp_session::session_key& key, const std::vector<std::string>& messages,
                                 std::size_t oversized, mcp_session::unix_ms now);
    void note_backend_stream_opened();

    // redis= zones: the cluster numbers every event (Redis), and each
    // node's ring mirrors the events it has received, by those numbers.
    // An event ahead of the ring leaves the ids between as holes, at
    // which streams wait until they arrive or settle_mirror gives them up.
    enum class mirror_result { stored, known, too_old, gone, no_room };
    // `in_order`: the event came on the channel after this worker caught
    // up, so the ids it skips will never come (holes are lost at once).
    mirror_result mirror(const mcp_session::session_key& key, const mcp_session::shared_event& event,
                         mcp_session::unix_ms now, bool in_order);
    // Everything up to `up_to` that has not arrived never will (the
    // cluster's stream no longer holds it): streams announce it as lost.
    void settle_mirror(const mcp_session::session_key& key, std::uint64_t up_to);
    // The session a publish names (nginx's id, else the backend's own) as
    // this zone knows it: `published` when it holds it alive (`key` is
    // then its nginx key), `expired` (removed now) or `unknown`.
    publish_result find_publish_target(mcp_session::session_key& key, std::string_view or_backend_id,
                                       mcp_session::unix_ms now);
    // The newest id the ring (or the session's counter, or the cluster's
    // floor) knows; 0: none or gone.
    std::uint64_t newest_event(const mcp_session::session_key& key);
    // The cluster numbered one of the session's events `id` (its publisher is here).
    void note_cluster_id(const mcp_session::session_key& key, std::uint64_t id);
    // A stream on another node took the session's stream over: the one
    // here with `token` ends as taken over. False: it had ended already.
    bool end_listener(const mcp_session::session_key& key, std::uint64_t token);

private:
    zone_conf& zone_;
};

}  // namespace mcp_ngx
