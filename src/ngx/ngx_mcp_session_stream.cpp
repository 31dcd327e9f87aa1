// nginx's own SSE stream for a session: the connect marker, replay from
// the shared ring after Last-Event-ID (or what no stream has sent yet),
// then live events, heartbeats, and a clean end when the session ends or
// a newer GET takes the stream over. The wire forms are sse_wire's.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_backend_stream.hpp"
#include "ngx_mcp_session_cluster.hpp"
#include "ngx_mcp_session_cluster_streams.hpp"
#include "ngx_mcp_session_doorbell.hpp"
#include "ngx_mcp_session_events.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_zone.hpp"

#include "mcp_session/error_body.hpp"
#include "mcp_session/sse_wire.hpp"
#include "mcp_session/text.hpp"

#include <algorithm>
#include <exception>
#include <new>
#include <string>
#include <functional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mcp_ngx {

// One open stream. Lives in the request pool; the pool cleanup runs the
// destructor, so the output buffer is freed with the request.
struct stream_ctx {
    ngx_http_request_t* r = nullptr;
    zone_conf* zone = nullptr;
    mcp_session::session_key key;
    std::uint64_t token = 0;
    std::uint64_t post_stream = 0;  // 0: the session's standalone stream; else P of the POST stream resumed
    std::uint64_t cursor = 0;       // the last id sent (a POST stream's: its k)
    std::uint64_t sent = 0;  // events up to here were written out (cursor, once nothing is pending)
    std::uint64_t replay_until = 0;  // the newest event when the stream opened
    mcp_session::wire_form form;     // from mcp_session_stream_events and the negotiated revision
    std::string out;  // one batch; grows only to fit one event larger than a batch
    ngx_buf_t buf{};
    ngx_chain_t chain{};
    bool writing = false;
    bool finished = false;
    // redis=: the stream is the cluster's listener of the session, and
    // sends nothing until its ring has caught up with Redis.
    bool shared = false;
    bool awaiting_shared = false;
    std::uint64_t asked_cursor = 0;     // Last-Event-ID (0: none)
    std::uint64_t local_delivered = 0;  // where this node's previous stream stopped
    ngx_msec_t heartbeat_interval = 0;
    ngx_event_t heartbeat{};
    ngx_event_t deadline{};  // the session's expiry: the stream ends then, not at the next sweep
    struct {
        ngx_queue_t queue;  // first member: a queue pointer is the link's address
        stream_ctx* owner;
    } link{};
};

namespace {

// Bounds nginx memory per subscriber: a slow reader holds at most this
// much; the rest waits in the shared ring (and becomes `lagged` there).
constexpr std::size_t batch_bytes = 256 * 1024;

ngx_queue_t local_streams;  // this worker's open streams

// Tokens are numbered per zone: two zones' streams may share one, so the
// registry keys by both.
struct stream_id {
    const zone_conf* zone;
    std::uint64_t token;
    bool operator==(const stream_id& other) const { return zone == other.zone && token == other.token; }
};
struct stream_id_hash {
    std::size_t operator()(const stream_id& id) const noexcept
    {
        return std::hash<const void*>()(id.zone) ^ (std::hash<std::uint64_t>()(id.token) * 0x9e3779b97f4a7c15ULL);
    }
};
std::unordered_map<stream_id, stream_ctx*, stream_id_hash> streams_by_token;
std::vector<std::uint64_t> pending_tokens;  // reserved once: filled under the zone lock

// Batch buffers of ended streams, kept for the next ones: a fresh 256 KB
// buffer is new pages, and first-touch page faults cost more than the
// whole replay (measured: 256 x 1 KB replay 2.3 ms fresh, 0.3 ms warm).
constexpr std::size_t spare_batches_kept = 16;
std::vector<std::string> spare_batches;  // capacity reserved at worker start

std::string take_batch_buffer()
{
    if (spare_batches.empty()) {
        std::string fresh;
        fresh.reserve(batch_bytes);
        return fresh;
    }
    std::string reused = std::move(spare_batches.back());
    spare_batches.pop_back();
    reused.clear();
    return reused;
}

void give_back_batch_buffer(std::string& buffer) noexcept
{
    // A buffer grown for one large event is not kept: spares stay batch-sized.
    if (spare_batches.size() < spare_batches_kept && buffer.capacity() >= batch_bytes &&
        buffer.capacity() < 2 * batch_bytes) {
        spare_batches.push_back(std::move(buffer));  // no allocation: capacity was reserved
    }
}

void log_failure(ngx_log_t* log, const char* what, const std::exception* e)
{
    ngx_log_error(NGX_LOG_ERR, log, 0, "mcp_session: %s failed: %s", what, e ? e->what() : "unknown error");
}

// What every call that may end the stream returns. After `ended` the
// stream, its request and its pool (where the stream and its timers live)
// may already be freed: the caller returns at once without touching them.
enum class [[nodiscard]] stream_fate { alive, ended };

// Ends the stream; `clean` sends the final chunk so the client sees a
// proper end of stream and reconnects.
stream_fate finish(stream_ctx* s, bool clean)
{
    if (s->finished) {
        return stream_fate::ended;
    }
    s->finished = true;
    if (s->link.queue.next != nullptr) {
        ngx_queue_remove(&s->link.queue);  // local_streams holds open streams only
        s->link.queue.next = nullptr;
    }
    ngx_http_request_t* r = s->r;
    ngx_int_t rc = NGX_ERROR;
    if (clean && !r->connection->error) {
        auto* last = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
        ngx_chain_t* cl = ngx_alloc_chain_link(r->pool);
        if (last != nullptr && cl != nullptr) {
            // retry: tells a client of 2025-11-25+ when to reconnect (static text).
            const std::string_view closing = mcp_session::closing_text(s->form);
            if (!closing.empty()) {
                last->start = last->pos = reinterpret_cast<u_char*>(const_cast<char*>(closing.data()));
                last->end = last->last = last->pos + closing.size();
                last->memory = 1;
            }
            last->last_buf = 1;
            cl->buf = last;
            cl->next = nullptr;
            rc = ngx_http_output_filter(r, cl);
        }
    }
    ngx_http_finalize_request(r, rc);  // may free the request's pool, and `s` with it
    return stream_fate::ended;
}

bool output_pending(ngx_http_request_t* r, ngx_int_t rc)
{
    return rc == NGX_AGAIN || r->out != nullptr || r->connection->buffered;
}

stream_fate wait_for_writable(stream_ctx* s)
{
    ngx_http_request_t* r = s->r;
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    s->writing = true;
    // Called after bytes moved (a write, or a write event): send_timeout
    // measures time without progress, as ngx_http_writer does.
    ngx_add_timer(r->connection->write, clcf->send_timeout);
    if (ngx_handle_write_event(r->connection->write, clcf->send_lowat) != NGX_OK) {
        return finish(s, false);
    }
    return stream_fate::alive;
}

// One batch of what the ring holds beyond the cursor, into s->out. An
// event larger than the batch grows the buffer (outside the zone lock) to
// fit it alone; the next batch goes back to a batch-sized buffer.
read_outcome read_batch(stream_ctx* s)
{
    if (s->out.capacity() >= 2 * batch_bytes) {
        std::string().swap(s->out);
        s->out = take_batch_buffer();
    }
    s->out.clear();
    event_store events(*s->zone);
    auto read = [&] {
        return s->post_stream != 0
                   ? events.read_post_stream(s->key, s->post_stream, s->token, s->cursor, s->form, s->out)
                   : events.read(s->key, s->token, s->cursor, s->replay_until, s->form, s->out);
    };
    read_outcome got = read();
    if (got.state == stream_state::open && got.needed > s->out.capacity()) {
        s->out.reserve(got.needed);
        s->out.clear();
        got = read();
    }
    return got;
}

// Writes s->out, which stays untouched until nginx has sent it (`writing`).
stream_fate send_out(stream_ctx* s)
{
    auto* data = reinterpret_cast<u_char*>(s->out.data());
    s->buf = ngx_buf_t{};
    s->buf.start = s->buf.pos = data;
    s->buf.end = s->buf.last = data + s->out.size();
    s->buf.memory = 1;
    s->buf.flush = 1;  // every batch leaves at once: this is a live stream
    s->chain.buf = &s->buf;
    s->chain.next = nullptr;
    const ngx_int_t rc = ngx_http_output_filter(s->r, &s->chain);
    if (rc == NGX_ERROR) {
        return finish(s, false);
    }
    if (output_pending(s->r, rc)) {
        return wait_for_writable(s);
    }
    return stream_fate::alive;
}

// Sends what the ring holds beyond the cursor, batch by batch, until the
// socket pushes back or the stream is up to date.
stream_fate pump(stream_ctx* s) noexcept
{
    if (s->finished) {
        return stream_fate::ended;
    }
    if (s->awaiting_shared) {
        return stream_fate::alive;  // shared_stream_ready pumps
    }
    while (!s->writing) {
        s->sent = s->cursor;  // nothing pending: what the cursor covers was written
        read_outcome got;
        try {
            got = read_batch(s);
        } catch (const std::exception& e) {
            log_failure(s->r->connection->log, "stream delivery", &e);
            return finish(s, false);
        }
        if (got.state != stream_state::open) {
            return finish(s, true);  // session ended, a newer GET took over, or a POST stream is complete
        }
        s->cursor = got.last_id;  // also past events of other streams, which this one skips
        if (s->out.empty()) {
            return stream_fate::alive;
        }
        if (send_out(s) == stream_fate::ended) {
            return stream_fate::ended;
        }
    }
    return stream_fate::alive;
}

void on_stream_write(ngx_http_request_t* r) noexcept
{
    request_state* state = state_of(r);
    stream_ctx* s = state == nullptr ? nullptr : state->stream;
    if (s == nullptr || s->finished) {
        return;
    }
    ngx_event_t* wev = r->connection->write;
    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, NGX_ETIMEDOUT, "client timed out");
        r->connection->timedout = 1;
        (void)finish(s, false);  // a reader that stopped reading for send_timeout
        return;
    }
    const ngx_int_t rc = ngx_http_output_filter(r, nullptr);
    if (rc == NGX_ERROR) {
        (void)finish(s, false);
        return;
    }
    if (output_pending(r, rc)) {
        (void)wait_for_writable(s);
        return;
    }
    if (wev->timer_set) {
        ngx_del_timer(wev);
    }
    s->writing = false;
    (void)pump(s);  // the last use of `s` here
}

// One heartbeat per session per interval: a session has one stream, and
// only that stream's worker runs this timer. A heartbeat is written by the
// stream, never put in the ring: it cannot push a message out.
// `ev` lives in the stream: once pump or finish says `ended` it may be
// freed memory, so nothing after them reads either.
void on_heartbeat(ngx_event_t* ev) noexcept
{
    auto* s = static_cast<stream_ctx*>(ev->data);
    if (s->finished) {
        return;
    }
    if (s->awaiting_shared) {
        ngx_add_timer(&s->heartbeat, s->heartbeat_interval);  // nothing goes before the connect marker
        return;
    }
    const std::int64_t now = now_ms();
    bool alive = true;
    try {
        // An open stream is activity: it keeps the session from idling out.
        alive = event_store(*s->zone).beat(s->key, now);
        if (alive) {
            note_shared_use(*s->zone, s->key);  // redis=: the other nodes see the activity too
        }
    } catch (const std::exception& e) {
        log_failure(ev->log, "heartbeat", &e);  // try again at the next beat; the stream itself is fine
    }
    if (!alive) {
        (void)finish(s, true);  // the session is gone
        return;
    }
    if (pump(s) == stream_fate::ended) {
        return;
    }
    if (s->post_stream == 0) {
        // The worker that held the backend's stream may have died since:
        // its claim is free, and this stream takes the holding over.
        if (request_state* state = state_of(s->r)) {
            hold_backend_stream(s->r, state);
        }
    }
    // A connection still sending needs no keep-alive, and s->out is busy.
    if (!s->writing) {
        try {
            s->out.clear();
            if (s->post_stream != 0) {
                s->out += ": heartbeat\n\n";  // the client's Last-Event-ID stays that of a real event
            } else {
                mcp_session::append_heartbeat(s->out, s->form, s->cursor, now);
            }
        } catch (const std::exception& e) {
            log_failure(ev->log, "heartbeat", &e);
            (void)finish(s, false);
            return;
        }
        if (send_out(s) == stream_fate::ended) {
            return;
        }
    }
    ngx_add_timer(&s->heartbeat, s->heartbeat_interval);
}

// Wakes at the session's expiry, or at half its idle timeout if that is
// sooner: the open stream refreshes the idle clock then, so a quiet
// stream keeps its session even with heartbeats off.
void arm_deadline(stream_ctx* s, mcp_session::unix_ms expires_at, mcp_session::unix_ms now)
{
    const mcp_session::unix_ms refresh = now + std::max<mcp_session::unix_ms>(s->zone->policy.idle_timeout_ms / 2, 1);
    // +1: nginx timers may fire a millisecond early relative to now_ms().
    const mcp_session::unix_ms wait = expires_at < refresh ? expires_at - now + 1 : refresh - now;
    const mcp_session::unix_ms longest = 24 * 60 * 60 * 1000;  // re-checked at least daily
    ngx_add_timer(&s->deadline, static_cast<ngx_msec_t>(std::clamp<mcp_session::unix_ms>(wait, 1, longest)));
}

// The session may have been touched meanwhile: expire it only if it is
// due, else refresh it and wait again. Removal wakes the stream to end.
void on_deadline(ngx_event_t* ev) noexcept
{
    auto* s = static_cast<stream_ctx*>(ev->data);
    if (s->finished) {
        return;
    }
    const std::int64_t now = now_ms();
    mcp_session::unix_ms expires_at = 0;
    try {
        expires_at = event_store(*s->zone).expire_or_touch(s->key, now);
        if (expires_at != 0) {
            note_shared_use(*s->zone, s->key);  // redis=: the other nodes see the activity too
        }
    } catch (const std::exception& e) {
        log_failure(ev->log, "session deadline", &e);
        expires_at = now + 1000;  // look again in a second
    }
    if (expires_at == 0) {
        (void)pump(s);  // ends the stream (the doorbell would too, a loop turn later)
        return;
    }
    arm_deadline(s, expires_at, now);
}

void cleanup_stream(void* data) noexcept
{
    auto* s = static_cast<stream_ctx*>(data);
    if (s->link.queue.next != nullptr) {
        ngx_queue_remove(&s->link.queue);
    }
    if (s->heartbeat.timer_set) {
        ngx_del_timer(&s->heartbeat);
    }
    if (s->deadline.timer_set) {
        ngx_del_timer(&s->deadline);
    }
    if (s->token != 0) {
        streams_by_token.erase(stream_id{s->zone, s->token});
        try {
            if (s->shared) {
                close_shared_stream(*s->zone, s->key, s->token, s->writing ? s->sent : s->cursor);
            }
            // A batch still pending at the end may never have reached the client.
            if (s->post_stream != 0) {
                event_store(*s->zone).unsubscribe_post_stream(s->key, s->post_stream, s->token);
            } else {
                event_store(*s->zone).unsubscribe(s->key, s->token, s->writing ? s->sent : s->cursor);
            }
        } catch (...) {
        }
    }
    give_back_batch_buffer(s->out);
    s->~stream_ctx();
}

stream_ctx* create_stream(ngx_http_request_t* r, request_state* state)
{
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(r->pool, 0);
    void* memory = ngx_pcalloc(r->pool, sizeof(stream_ctx));
    if (cleanup == nullptr || memory == nullptr) {
        return nullptr;
    }
    auto* s = new (memory) stream_ctx();
    cleanup->handler = cleanup_stream;
    cleanup->data = s;
    s->r = r;
    s->zone = state->zone;
    s->key = state->key;
    s->cursor = state->last_event_id;
    s->post_stream = state->resumed_post_stream;
    s->out = take_batch_buffer();
    state->stream = s;
    return s;
}

// Where a standalone stream starts: after Last-Event-ID (`asked`), or
// without one (0) after what an earlier stream `delivered`; a
// Last-Event-ID from the future (another session's, or a stale client's)
// replays nothing, and the stream goes on from the newest event.
std::uint64_t start_cursor(std::uint64_t asked, std::uint64_t delivered, std::uint64_t newest)
{
    return std::min(asked != 0 ? asked : delivered, newest);
}

// The connect marker, then what the ring holds beyond the cursor.
void start_sending(stream_ctx* s, const request_state* state, std::int64_t now)
{
    s->out.clear();
    if (s->post_stream != 0) {
        s->out += ": connected\n\n";  // resuming: the client's Last-Event-ID is already right
    } else {
        mcp_session::append_connected(s->out, s->form, s->cursor, to_view(state->id), now);
    }
    if (send_out(s) == stream_fate::alive && pump(s) == stream_fate::alive && ngx_exiting) {
        (void)finish(s, true);  // opened on an HTTP/2 connection of a worker that is leaving
    }
}

ngx_int_t open_stream(ngx_http_request_t* r)
{
    request_state* state = state_of(r);
    if (state == nullptr || state->status != session_status::valid) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    stream_ctx* s = create_stream(r, state);
    if (s == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    event_store events(*s->zone);
    const subscription subscribed =
        s->post_stream != 0 ? events.subscribe_post_stream(s->key, s->post_stream, ngx_worker, shares_events(*s->zone))
                            : events.subscribe(s->key, ngx_worker);
    s->token = subscribed.token;
    s->replay_until = subscribed.newest;
    s->asked_cursor = s->cursor;
    s->local_delivered = subscribed.delivered;
    if (s->post_stream == 0) {
        // Without Last-Event-ID (or with 0) a stream gets what no stream has
        // sent yet: events published before the first stream, never a
        // message an earlier stream already delivered.
        s->cursor = start_cursor(s->cursor, subscribed.delivered, subscribed.newest);
    }
    if (subscribed.session_gone) {
        return send_json(r, NGX_HTTP_NOT_FOUND, mcp_session::session_not_found_body(to_view(state->id)));
    }
    if (s->token == 0 && s->post_stream != 0) {
        return send_json(r, NGX_HTTP_BAD_REQUEST,
                         mcp_session::transport_error_body("Bad Request: Last-Event-ID names no stream of this session"));
    }
    if (s->token == 0) {
        return send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                         mcp_session::transport_error_body("Service Unavailable: no room for the session's event stream"));
    }
    const std::int64_t now = now_ms();

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = nullptr;
    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    if (!add_response_header(r, ngx_string("Cache-Control"), ngx_string("no-cache")) ||
        !add_response_header(r, ngx_string("X-Accel-Buffering"), ngx_string("no"))) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    const ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    s->form = mcp_session::wire_form_for(static_cast<mcp_session::stream_vocabulary>(lcf->stream_events),
                                         mcp_session::trim_ows(to_view(state->protocol_version)));
    s->heartbeat_interval = lcf->heartbeat;
    if (s->heartbeat_interval > 0) {
        s->heartbeat.handler = on_heartbeat;
        s->heartbeat.data = s;
        s->heartbeat.log = r->connection->log;
        s->heartbeat.cancelable = 1;
        ngx_add_timer(&s->heartbeat, s->heartbeat_interval);
    }
    s->deadline.handler = on_deadline;
    s->deadline.data = s;
    s->deadline.log = r->connection->log;
    s->deadline.cancelable = 1;
    arm_deadline(s, subscribed.expires_at, now);
    // Every event is flushed as it is written; Nagle would hold a small one
    // back until the previous write is acknowledged (as for keep-alive,
    // nginx's tcp_nodelay directive decides).
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    if (clcf->tcp_nodelay && ngx_tcp_nodelay(r->connection) != NGX_OK) {
        return NGX_ERROR;
    }
    r->read_event_handler = ngx_http_test_reading;  // notices a client that leaves
    r->write_event_handler = on_stream_write;
    s->link.owner = s;
    ngx_queue_insert_tail(&local_streams, &s->link.queue);
    streams_by_token[stream_id{s->zone, s->token}] = s;
    if (s->post_stream == 0) {
        hold_backend_stream(r, state);  // the backend's own messages join this stream
    }

    // The extra reference keeps the request (and `s`) alive through this
    // pump even when it ends the stream: the content phase's NGX_DONE
    // then drops the last reference.
    r->main->count++;
    if (shares_events(*s->zone)) {
        s->shared = true;
        // Set first: Redis may answer (fail) before open_shared_stream returns.
        s->awaiting_shared = true;
        if (open_shared_stream(*s->zone, s->key, s->token, s->post_stream == 0)) {
            return NGX_DONE;  // shared_stream_ready starts it (or did)
        }
        s->awaiting_shared = false;
    }
    start_sending(s, state, now);
    return NGX_DONE;
}

// Ending one stream frees only that stream, so the next link, taken
// before, stays valid.
void pump_all_local_streams() noexcept
{
    ngx_queue_t* q = ngx_queue_head(&local_streams);
    while (q != ngx_queue_sentinel(&local_streams)) {
        ngx_queue_t* next = ngx_queue_next(q);
        (void)pump(reinterpret_cast<decltype(stream_ctx::link)*>(q)->owner);
        q = next;
    }
}

// After a doorbell: the streams whose tokens publishers queued for this
// worker look for news (all of them if an inbox overflowed). Streams end
// themselves, and leave the registry, when their session is gone.
void deliver_to_local_streams() noexcept
{
    // A worker of an older cycle (reload) shares its number, and so its
    // inbox, with its successor: it must not take the successor's tokens.
    bool everything = ngx_exiting || ngx_quit;
    try {
        for_each_zone(ngx_cycle, [&](zone_conf& zone) {
            if (everything) {
                return;
            }
            pending_tokens.clear();
            everything |= event_store(zone).drain(ngx_worker, pending_tokens);
            everything |= pending_tokens.size() == pending_tokens.capacity();
            if (everything) {
                return;
            }
            // A token is a stream of this zone only. It may be queued twice:
            // a stream ended by the first pump has left the registry (its
            // pool cleanup erased it) before the second.
            for (const std::uint64_t token : pending_tokens) {
                const auto found = streams_by_token.find(stream_id{&zone, token});
                if (found != streams_by_token.end()) {
                    (void)pump(found->second);
                }
            }
        });
    } catch (const std::exception& e) {
        log_failure(ngx_cycle->log, "stream delivery", &e);
        everything = true;
    }
    if (everything) {
        pump_all_local_streams();
    }
}

// The worker is leaving (reload, quit): every stream ends cleanly (final
// chunk, or END_STREAM over HTTP/2) so its client reconnects to a new
// worker and replays from the ring. finish() unlinks the stream before
// it may free anything, and a stream freed along with another unlinks
// itself in its cleanup, so the head is always a live stream.
void finish_all_local_streams() noexcept
{
    while (!ngx_queue_empty(&local_streams)) {
        (void)finish(reinterpret_cast<decltype(stream_ctx::link)*>(ngx_queue_head(&local_streams))->owner, true);
    }
}

}  // namespace

void shared_stream_ready(zone_conf& zone, std::uint64_t token, std::uint64_t delivered) noexcept
{
    const auto found = streams_by_token.find(stream_id{&zone, token});
    if (found == streams_by_token.end()) {
        return;
    }
    stream_ctx* s = found->second;
    const request_state* state = state_of(s->r);
    if (s->finished || !s->awaiting_shared || state == nullptr) {
        return;
    }
    s->awaiting_shared = false;
    try {
        // As open_stream does, now with what the cluster holds: without
        // Last-Event-ID, after what any node's stream delivered.
        if (s->post_stream != 0) {
            event_store(zone).settle_post_stream(s->key, s->post_stream);  // a P nobody recorded ends
        } else {
            const std::uint64_t newest = event_store(zone).newest_event(s->key);
            s->cursor = start_cursor(s->asked_cursor, std::max(s->local_delivered, delivered), newest);
            s->replay_until = newest;
        }
        start_sending(s, state, now_ms());
    } catch (const std::exception& e) {
        log_failure(s->r->connection->log, "opening the stream", &e);
        (void)finish(s, false);
    }
}

ngx_int_t stream_handler(ngx_http_request_t* r) noexcept
{
    try {
        return open_stream(r);
    } catch (const std::exception& e) {
        log_failure(r->connection->log, "opening the stream", &e);
    } catch (...) {
        log_failure(r->connection->log, "opening the stream", nullptr);
    }
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

ngx_int_t start_stream_delivery(ngx_cycle_t* cycle) noexcept
{
    ngx_queue_init(&local_streams);
    try {
        pending_tokens.reserve(4 * inbox_capacity);  // a few zones' worth per wake-up
        spare_batches.reserve(spare_batches_kept);
    } catch (...) {
        return NGX_ERROR;
    }
    for_each_zone(cycle, [&](zone_conf& zone) {
        std::size_t released = 0;
        const std::int64_t dead = event_store(zone).claim_worker_number(ngx_worker, zone.cycle, ngx_pid, released);
        if (dead != 0) {
            ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                          "mcp_session zone \"%V\": worker %ui replaces process %L, which died; released its %uz streams",
                          &zone.name, ngx_worker, dead, released);
        }
    });
    return listen_doorbell(cycle, deliver_to_local_streams, [] {
        finish_all_local_streams();
        end_backend_streams();
    });
}

}  // namespace mcp_ngx
