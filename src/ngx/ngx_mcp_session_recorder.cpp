#include "ngx_mcp_session_recorder.hpp"

#include "ngx_mcp_session_answer_watch.hpp"
#include "ngx_mcp_session_cluster_streams.hpp"
#include "ngx_mcp_session_events.hpp"
#include "ngx_mcp_session_http.hpp"

#include "mcp_session/sse_relay.hpp"
#include "mcp_session/sse_wire.hpp"
#include "mcp_session/text.hpp"

#include <algorithm>
#include <new>
#include <string>
#include <vector>

namespace mcp_ngx {

// One recorded answer. Lives in the request pool; its cleanup runs the
// destructor and ends the recording if the answer did not.
struct post_recorder {
    post_recorder(zone_conf& zone_, const mcp_session::session_key& key_, std::uint64_t stream_, bool priming,
                  std::size_t event_max_size)
        : zone(&zone_), key(key_), stream(stream_), relay(stream_, priming, event_max_size)
    {
    }

    zone_conf* zone;
    mcp_session::session_key key;
    std::uint64_t stream;
    mcp_session::sse_relay relay;
    bool across_nodes = false;  // redis=: recorded through the cluster, not in this zone's ring
    bool closed = false;
    bool client_gone = false;  // the client left: the answer is still read and recorded, not sent
    bool bypass = false;       // a buffer not in memory came: the rest passes untouched, unrecorded
    ngx_http_event_handler_pt client_writable = nullptr;  // the upstream's, wrapped by on_client_writable
    ngx_chain_t* free = nullptr;                  // our output buffers, sent and ready again
    ngx_chain_t* busy = nullptr;                  // ... still being sent
    // The upstream's buffers whose bytes went into busy output: they stay
    // unconsumed until it is sent, so the upstream reads no further ahead
    // of a slow client than its own buffer (proxy_buffer_size).
    std::vector<ngx_buf_t*> held;
};

namespace {

constexpr std::size_t output_chunk_bytes = 16 * 1024;
constexpr std::size_t relay_read_bytes = 16 * 1024;

const ngx_buf_tag_t recorder_tag = reinterpret_cast<ngx_buf_tag_t>(&ngx_mcp_session_module);

// What one body filter call relays and records, used up before it passes
// its output on: one per worker, so its buffers serve every POST stream
// instead of being made for each.
struct relay_scratch {
    std::string out;                     // the relayed bytes
    mcp_session::relayed_batch events;  // the events they complete
};

relay_scratch& scratch_for_call()
{
    static relay_scratch scratch;
    // A large answer's bytes are not held between calls.
    if (scratch.out.capacity() > 4 * output_chunk_bytes) {
        std::string().swap(scratch.out);
    }
    scratch.out.clear();
    scratch.events.clear();
    return scratch;
}

// The answer of POST stream `stream` ended (or its recording gave up).
void end_recording(zone_conf& zone, const mcp_session::session_key& key, std::uint64_t stream, bool across_nodes,
                   std::uint64_t next_index, std::size_t unrecorded)
{
    if (across_nodes) {
        close_shared_post_stream(zone, key, stream, next_index, unrecorded);
    } else {
        event_store(zone).close_post_stream(key, stream, next_index, unrecorded);
    }
}

void close_recording(post_recorder* rec) noexcept
{
    if (rec->closed) {
        return;
    }
    rec->closed = true;
    try {
        end_recording(*rec->zone, rec->key, rec->stream, rec->across_nodes, rec->relay.next_index(),
                      rec->relay.oversized());
    } catch (...) {
        // The session's resumer then ends at the session's end.
    }
}

void cleanup_recorder(void* data) noexcept
{
    auto* rec = static_cast<post_recorder*>(data);
    close_recording(rec);
    rec->~post_recorder();
}

// An output buffer from the free list, or a new one sized for `wanted`
// bytes (within bounds): a backend writing a few bytes at a time to a
// client that does not read must not cost a full chunk per write.
ngx_buf_t* output_buffer(ngx_http_request_t* r, post_recorder* rec, ngx_chain_t*** tail, std::size_t wanted)
{
    ngx_chain_t* cl = ngx_chain_get_free_buf(r->pool, &rec->free);
    if (cl == nullptr) {
        return nullptr;
    }
    ngx_buf_t* b = cl->buf;
    if (b->start == nullptr) {
        const std::size_t size = std::clamp<std::size_t>(wanted, 512, output_chunk_bytes);
        b->start = static_cast<u_char*>(ngx_palloc(r->pool, size));
        if (b->start == nullptr) {
            return nullptr;
        }
        b->end = b->start + size;
        b->tag = recorder_tag;
    }
    const ngx_buf_t fresh{};
    u_char* start = b->start;
    u_char* end = b->end;
    *b = fresh;
    b->start = b->pos = b->last = start;
    b->end = end;
    b->tag = recorder_tag;
    cl->next = nullptr;
    **tail = cl;
    *tail = &cl->next;
    return b;
}

// The client is gone: what would have gone to it is dropped (the ring has
// it), the upstream's buffers are free again so it reads on until the
// backend's answer ends (proxy_read_timeout bounds it), and no send
// timeout can end the request meanwhile. The request ends as any whose
// client left: when the upstream finalizes it.
ngx_int_t absorb(ngx_http_request_t* r, post_recorder* rec, ngx_chain_t* dropped)
{
    if (!rec->client_gone) {
        rec->client_gone = true;
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "mcp_session: client left during a POST stream; the backend's answer is still recorded");
    }
    r->connection->error = 1;  // nothing more is written to it, and the end is a termination
    for (ngx_chain_t* cl = dropped; cl != nullptr; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        if (cl->buf->in_file) {
            cl->buf->file_pos = cl->buf->file_last;
        }
    }
    for (ngx_buf_t* held : rec->held) {
        held->pos = held->last;
    }
    rec->held.clear();
    ngx_event_t* wev = r->connection->write;
    wev->ready = 1;
    if (wev->timer_set) {
        ngx_del_timer(wev);
    }
    return NGX_OK;
}

// Unbuffered, the upstream reads only into its one buffer
// (proxy_buffer_size, a page by default): a 64 KB tool-call answer would
// cost 16 reads, writes and filter passes. The body not yet passed on
// moves along; the headers keep pointing into the old buffer, which the
// pool keeps.
void enlarge_read_buffer(ngx_http_request_t* r)
{
    ngx_buf_t& b = r->upstream->buffer;
    if (b.start == nullptr || static_cast<std::size_t>(b.end - b.start) >= relay_read_bytes) {
        return;
    }
    auto* fresh = static_cast<u_char*>(ngx_palloc(r->pool, relay_read_bytes));
    if (fresh == nullptr) {
        return;  // the page-sized buffer still works
    }
    const std::size_t pending = static_cast<std::size_t>(b.last - b.pos);
    ngx_memcpy(fresh, b.pos, pending);
    b.start = b.pos = fresh;
    b.last = fresh + pending;
    b.end = fresh + relay_read_bytes;
}

// A client that took nothing for send_timeout is as good as gone (a
// network that vanished without a FIN or RST): instead of ending the
// request, and the backend's answer with it, the answer is read on and
// recorded for the client's resume.
void on_client_writable(ngx_http_request_t* r) noexcept
{
    request_state* state = state_of(r);
    post_recorder* rec = state != nullptr ? state->recorder : nullptr;
    if (rec == nullptr || rec->client_writable == nullptr) {
        return;
    }
    ngx_event_t* wev = r->connection->write;
    if (wev->timedout && !rec->client_gone && !rec->closed && !rec->bypass) {
        wev->timedout = 0;
        ngx_log_error(NGX_LOG_INFO, r->connection->log, NGX_ETIMEDOUT, "client timed out");
        (void)absorb(r, rec, nullptr);
    }
    rec->client_writable(r);
}

}  // namespace

void start_post_recording(ngx_http_request_t* r, request_state* state)
{
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    if (!lcf->stream || state->status != session_status::valid || r->method != NGX_HTTP_POST ||
        r->headers_out.status != NGX_HTTP_OK || !answered_by_backend(r) || !has_content_type(r, "text/event-stream") ||
        r->headers_out.content_encoding != nullptr) {
        return;  // a compressed stream is not SSE text to relay
    }
    // redis=: numbered by the cluster, so any node can resume it.
    const bool across_nodes = shares_events(*state->zone);
    const std::uint64_t stream = across_nodes ? open_shared_post_stream(*state->zone, state->key)
                                              : event_store(*state->zone).open_post_stream(state->key, ngx_worker, now_ms());
    if (stream == 0) {
        return;  // passed on as it is (counted)
    }
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(r->pool, 0);
    void* memory = cleanup == nullptr ? nullptr : ngx_pcalloc(r->pool, sizeof(post_recorder));
    const auto give_up = [&] { end_recording(*state->zone, state->key, stream, across_nodes, 1, 0); };
    if (memory == nullptr) {
        give_up();
        throw std::bad_alloc();
    }
    const mcp_session::wire_form form = mcp_session::wire_form_for(
        static_cast<mcp_session::stream_vocabulary>(lcf->stream_events),
        mcp_session::trim_ows(to_view(state->protocol_version)));
    post_recorder* rec;
    try {
        rec = new (memory) post_recorder(*state->zone, state->key, stream, form.priming, lcf->event_max_size);
        rec->across_nodes = across_nodes;
    } catch (...) {
        give_up();
        throw;
    }
    cleanup->handler = cleanup_recorder;
    cleanup->data = rec;
    state->recorder = rec;

    // Events are relayed as they arrive, in memory: a stream must not wait
    // in proxy buffers or temp files (this runs before the upstream sets
    // its body handlers up, so it reads the answer unbuffered).
    r->upstream->buffering = 0;
    enlarge_read_buffer(r);
    // nginx's ids change the length.
    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    // Disconnection is not cancellation: a client that leaves must not end
    // the backend's answer, which a resuming client will want. The
    // upstream's broken-connection check would finalize it at the client's
    // FIN or RST_STREAM; without it, the client's absence shows as a failed
    // write, which the body filter absorbs.
    // A request body still arriving (proxy_request_buffering off) needs the
    // read events; the upstream puts its check back after the body anyway.
    if (!r->reading_body) {
        r->read_event_handler = ngx_http_block_reading;
    }
}

ngx_int_t relay_post_stream(ngx_http_request_t* r, request_state* state, ngx_chain_t* in,
                            ngx_http_output_body_filter_pt next)
{
    post_recorder* rec = state->recorder;
    if (rec->bypass) {
        return next(r, in);
    }
    if (rec->client_writable == nullptr) {
        // The upstream has set its downstream handler by the first body.
        rec->client_writable = r->write_event_handler;
        r->write_event_handler = on_client_writable;
        // Both header filters have run: the relay reads the answer once,
        // for the client, the ring and the answer watch.
        rec->relay.watch_answer(take_over_answer_watch(state));
    }
    relay_scratch& scratch = scratch_for_call();
    std::string& relayed = scratch.out;
    const mcp_session::relayed_batch& events = scratch.events;
    bool last = false;
    ngx_chain_t* pass_on = nullptr;  // a buffer not in memory ends the relaying (see below)
    for (ngx_chain_t* cl = in; cl != nullptr; cl = cl->next) {
        ngx_buf_t* b = cl->buf;
        if (!ngx_buf_in_memory(b) && ngx_buf_size(b) > 0) {
            // Unbuffered proxying never hands over file buffers; should
            // another module do it, the rest goes on as it is, unrecorded.
            pass_on = cl;
            break;
        }
        last |= b->last_buf != 0;
        if (b->last > b->pos) {
            rec->relay.feed(std::string_view(reinterpret_cast<const char*>(b->pos), static_cast<std::size_t>(b->last - b->pos)),
                            relayed, scratch.events);
            rec->held.push_back(b);
        }
    }
    if (last || pass_on != nullptr) {
        rec->relay.finish(relayed);
    }
    record_answer_counts(state);
    if (!events.empty() && rec->across_nodes) {
        append_post_events(*rec->zone, rec->key, rec->stream, events);
    } else if (!events.empty()) {
        event_store(*rec->zone).record_post_events(rec->key, rec->stream, events, rec->relay.next_index(),
                                                   now_ms());
    }
    if (last || pass_on != nullptr) {
        close_recording(rec);
    }

    if (rec->client_gone || r->connection->error) {
        return absorb(r, rec, in);  // nothing is built for a client that is gone
    }
    ngx_chain_t* out = nullptr;
    ngx_chain_t** tail = &out;
    ngx_buf_t* b = nullptr;
    for (std::size_t done = 0; done < relayed.size();) {
        b = output_buffer(r, rec, &tail, relayed.size() - done);
        if (b == nullptr) {
            return NGX_ERROR;
        }
        const std::size_t n = std::min<std::size_t>(relayed.size() - done, b->end - b->start);
        b->last = ngx_cpymem(b->pos, relayed.data() + done, n);
        b->temporary = 1;
        done += n;
    }
    // Every data buffer leaves flushed, so a flush alone has nothing to
    // push; only the end needs a buffer of its own.
    if (b == nullptr && last && pass_on == nullptr) {
        b = output_buffer(r, rec, &tail, 0);
        if (b == nullptr) {
            return NGX_ERROR;
        }
    }
    if (b != nullptr) {
        b->flush = 1;  // a live stream: every event leaves at once
        b->last_buf = last ? 1 : 0;
        b->last_in_chain = last ? 1 : 0;
    }
    // The caller's links stay the caller's: ours point to its buffers.
    if (pass_on != nullptr && ngx_chain_add_copy(r->pool, tail, pass_on) != NGX_OK) {
        return NGX_ERROR;
    }
    const ngx_int_t rc = next(r, out);
    if (rc == NGX_ERROR) {
        return absorb(r, rec, in);
    }
    ngx_chain_update_chains(r->pool, &rec->free, &rec->busy, &out, recorder_tag);
    // Our output is a copy: holding the upstream's buffers is only the
    // backpressure, which an ended relay no longer needs.
    if (rec->busy == nullptr || rec->closed) {
        for (ngx_buf_t* held : rec->held) {
            held->pos = held->last;  // sent: the upstream may reuse its buffer
        }
        rec->held.clear();
    }
    rec->bypass = pass_on != nullptr;
    if (rec->bypass) {
        // What passes on untouched from the next call on is the watch's
        // own again (not this call's output: the relay fed it already).
        hand_back_answer_watch(state);
    }
    return rc;
}

}  // namespace mcp_ngx
