// How nginx holds a backend's standalone stream. Each GET to the backend
// is a request of nginx's own: no client connection carries it, so it
// lives on a connection made for it (a socket with no peer, never polled,
// so nginx's usual request life and close apply unchanged) and runs the
// location's content handler (proxy_pass, with its upstream, balancer and
// proxy_* settings) directly, after the client's GET passed the phases.
// Its answer goes through the filters like any other, and the module's
// filters keep all of it: the messages go to the session's ring.
#include "ngx_mcp_session_backend_stream.hpp"

#include "ngx_mcp_session_cluster_streams.hpp"

#include "ngx_mcp_session_events.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_store.hpp"

#include "mcp_session/message.hpp"
#include "mcp_session/sse_reader.hpp"

#include <algorithm>
#include <exception>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

namespace mcp_ngx {

struct backend_stream {
    zone_conf* zone = nullptr;
    mcp_session::session_key key;
    std::string registry_key;
    std::string session_id;  // nginx's id, for $mcp_session_id and log lines
    bool issue_mode = false;
    ngx_msec_t grace = 0;
    std::size_t event_max_size = 0;

    // What each GET is made of, copied from the client's stream GET that
    // started the holding (configuration pointers live as long as the cycle,
    // which outlives the worker's streams: a reload ends them).
    void** main_conf = nullptr;
    void** srv_conf = nullptr;
    void** loc_conf = nullptr;
    ngx_http_conf_ctx_t* conf_ctx = nullptr;
    ngx_http_addr_conf_t* addr_conf = nullptr;
    ngx_listening_t* listening = nullptr;
    std::string uri;
    std::string args;
    std::string unparsed_uri;  // as the client sent it: proxy_pass without a URI part sends it unchanged
    struct {
        unsigned valid_unparsed_uri : 1;
        unsigned quoted_uri : 1;  // these decide whether proxy_pass escapes the (decoded) URI
        unsigned plus_in_uri : 1;
        unsigned empty_path_in_uri : 1;
        unsigned internal : 1;
        unsigned valid_location : 1;
    } uri_flags{};
    std::string server;  // $host
    std::string protocol_version;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string client_sockaddr;  // bytes of a sockaddr: $remote_addr is the client's
    std::string local_sockaddr;
    std::string client_text;

    // The GET in flight (null between two), and what its answer told.
    ngx_http_request_t* request = nullptr;
    std::optional<mcp_session::sse_reader> reader;
    std::size_t oversized_seen = 0;
    bool streaming = false;  // the answer is the backend's 200 event stream
    std::string backend_last_id;  // Last-Event-ID of a reopened stream
    std::optional<std::uint64_t> retry_ms;
    unsigned failures = 0;  // attempts in a row that ended early
    mcp_session::unix_ms opened_ms = 0;
    mcp_session::unix_ms unlistened_since = 0;  // 0: a client stream was open at the last check

    enum class after_close { reopen, stop, absent };
    after_close next = after_close::reopen;
    bool stopping = false;

    ngx_event_t check{};   // periodic: does a client still need it?
    ngx_event_t reopen{};  // the backend closed it: open it again (backoff)
    ngx_event_t closed{};  // posted when the GET's request has been freed
};

namespace {

// This worker's held streams, by zone and session.
std::unordered_map<std::string, backend_stream*> held_streams;

constexpr ngx_msec_t first_reopen_delay = 1000;
constexpr ngx_msec_t shortest_reopen_delay = 100;  // a backend's `retry: 0` is no licence to spin
constexpr ngx_msec_t longest_reopen_delay = 30000;
// A stream that stayed up this long was no failed attempt.
constexpr mcp_session::unix_ms stable_stream_ms = 10000;
// Copied request headers are bounded: a GET stream needs a few, and the
// copy lives as long as the holding.
constexpr std::size_t max_copied_header_bytes = 16 * 1024;

std::string registry_key_of(const zone_conf* zone, const mcp_session::session_key& key)
{
    std::string text(reinterpret_cast<const char*>(&zone), sizeof(zone));
    text += static_cast<char>(key.form());
    text.append(reinterpret_cast<const char*>(key.data()), key.size());
    return text;
}

bool ieq(std::string_view a, std::string_view b)
{
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ngx_tolower(x) == ngx_tolower(y); });
}

// Headers a GET of nginx's sets itself, or that describe the client's
// own connection or body.
bool is_replaced_header(std::string_view name)
{
    // A compressed or partial answer, or a conditional one, is no event
    // stream nginx can read.
    for (const std::string_view replaced :
         {"Mcp-Session-Id", "Last-Event-ID", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
          "Proxy-Connection", "Upgrade", "TE", "Expect", "Accept-Encoding", "Range", "If-Range", "If-Match",
          "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}) {
        if (ieq(name, replaced)) {
            return true;
        }
    }
    return false;
}

u_char* describe(ngx_log_t* log, u_char* buf, size_t len)
{
    u_char* p = buf;
    if (log->action != nullptr) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= static_cast<size_t>(p - buf);
        buf = p;
    }
    auto* ctx = static_cast<ngx_http_log_ctx_t*>(log->data);
    // ngx_http_free_request clears `request` (not current_request): after
    // it, only the connection is left to describe.
    ngx_http_request_t* r = ctx != nullptr && ctx->request != nullptr ? ctx->current_request : nullptr;
    p = ngx_snprintf(p, len, ", holding a backend's stream of an MCP session");
    len -= static_cast<size_t>(p - buf);
    buf = p;
    if (r != nullptr && r->upstream != nullptr && r->upstream->peer.name != nullptr) {
        p = ngx_snprintf(p, len, ", upstream: \"%V\"", r->upstream->peer.name);
    }
    return p;
}

// Gives the session's claim back (again is harmless: the claim is only
// released by its holder).
void release_claim(backend_stream* bs) noexcept
{
    try {
        event_store(*bs->zone).release_backend_stream(bs->key, ngx_pid, bs->next == backend_stream::after_close::absent);
    } catch (...) {
        // The claim dies with this process then (a later claimant sees no such pid).
    }
}

void finish(backend_stream* bs) noexcept
{
    if (bs->check.timer_set) {
        ngx_del_timer(&bs->check);
    }
    if (bs->reopen.timer_set) {
        ngx_del_timer(&bs->reopen);
    }
    if (bs->closed.posted) {
        ngx_delete_posted_event(&bs->closed);
    }
    release_claim(bs);
    held_streams.erase(bs->registry_key);
    delete bs;
}

// Ends the GET in flight the way the upstream ends its own: the backend
// connection is closed, then the request, whose freeing posts `closed`.
void end_request(ngx_http_request_t* r) noexcept
{
    ngx_connection_t* c = r->connection;
    ngx_http_upstream_t* u = r->upstream;
    if (u != nullptr && u->cleanup != nullptr && *u->cleanup != nullptr) {
        (*u->cleanup)(r);
    } else {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
    ngx_http_run_posted_requests(c);
}

void stop(backend_stream* bs) noexcept
{
    bs->stopping = true;
    if (bs->request != nullptr) {
        // The claim first: a client stream elsewhere (a new worker after a
        // reload) may hold the backend's stream while this GET closes.
        release_claim(bs);
        end_request(bs->request);  // finish() follows from `closed`
    } else {
        finish(bs);
    }
}

void on_request_freed(void* data) noexcept
{
    auto* bs = static_cast<backend_stream*>(data);
    bs->request = nullptr;
    ngx_post_event(&bs->closed, &ngx_posted_events);
}

// The socket is never polled: its read handler runs only when the worker
// starts exiting (ngx_close_idle_connections, with c->close set).
void on_connection_read(ngx_event_t* ev) noexcept
{
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    if (c->close) {
        end_backend_streams();
    }
}

bool copy_sockaddr(ngx_pool_t* pool, const std::string& bytes, sockaddr** to, socklen_t* length)
{
    if (bytes.empty()) {
        return true;
    }
    auto* copy = static_cast<sockaddr*>(ngx_palloc(pool, bytes.size()));
    if (copy == nullptr) {
        return false;
    }
    ngx_memcpy(copy, bytes.data(), bytes.size());
    *to = copy;
    *length = static_cast<socklen_t>(bytes.size());
    return true;
}

bool add_request_header(ngx_http_request_t* r, std::string_view name, std::string_view value)
{
    auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_in.headers));
    if (h == nullptr) {
        return false;
    }
    h->key = pool_copy(r, name);
    h->value = pool_copy(r, value);
    h->lowcase_key = static_cast<u_char*>(ngx_pnalloc(r->pool, name.size()));
    if (h->key.data == nullptr || h->value.data == nullptr || h->lowcase_key == nullptr) {
        return false;
    }
    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, h->key.len);
    if (ieq(name, "Host")) {
        r->headers_in.host = h;
    }
    return true;
}

// What each GET is sent with that may change while the stream is held:
// a heal gives the session a new backend id and server.
struct store_facts {
    std::string backend_id;
    std::string pinned;
};

// The request as ngx_http_alloc_request and the header parser would
// leave it for `GET uri?args HTTP/1.1` with the copied headers.
bool fill_request(ngx_http_request_t* r, backend_stream* bs, const store_facts& facts)
{
    auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(bs->main_conf[ngx_http_core_module.ctx_index]);
    r->signature = NGX_HTTP_MODULE;
    r->main_conf = bs->main_conf;
    r->srv_conf = bs->srv_conf;
    r->loc_conf = bs->loc_conf;
    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_request_empty_handler;
    r->header_in = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
    r->ctx = static_cast<void**>(ngx_pcalloc(r->pool, sizeof(void*) * ngx_http_max_module));
    r->variables = static_cast<ngx_http_variable_value_t*>(
        ngx_pcalloc(r->pool, cmcf->variables.nelts * sizeof(ngx_http_variable_value_t)));
    if (r->header_in == nullptr || r->ctx == nullptr || r->variables == nullptr ||
        ngx_list_init(&r->headers_out.headers, r->pool, 20, sizeof(ngx_table_elt_t)) != NGX_OK ||
        ngx_list_init(&r->headers_out.trailers, r->pool, 4, sizeof(ngx_table_elt_t)) != NGX_OK ||
        ngx_list_init(&r->headers_in.headers, r->pool, bs->headers.size() + 4, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return false;
    }
    r->main = r;
    r->count = 1;
    const ngx_time_t* tp = ngx_timeofday();
    r->start_sec = tp->sec;
    r->start_msec = tp->msec;
    r->method = NGX_HTTP_GET;
    ngx_str_set(&r->method_name, "GET");
    r->http_version = NGX_HTTP_VERSION_11;
    ngx_str_set(&r->http_protocol, "HTTP/1.1");
    r->headers_in.content_length_n = -1;
    r->headers_in.keep_alive_n = -1;
    r->headers_out.content_length_n = -1;
    r->headers_out.last_modified_time = -1;
    r->uri_changes = NGX_HTTP_MAX_URI_CHANGES + 1;
    r->subrequests = NGX_HTTP_MAX_SUBREQUESTS + 1;
    r->http_state = NGX_HTTP_PROCESS_REQUEST_STATE;
    r->error_page = 1;  // an error of its own is no page to redirect to (error_page)
    // The client's URI with the flags that say how it was written: the
    // decoded URI (which may hold CR, LF or spaces from %-escapes) goes to
    // the backend escaped, exactly as the client's own request would.
    r->valid_unparsed_uri = bs->uri_flags.valid_unparsed_uri;
    r->quoted_uri = bs->uri_flags.quoted_uri;
    r->plus_in_uri = bs->uri_flags.plus_in_uri;
    r->empty_path_in_uri = bs->uri_flags.empty_path_in_uri;
    r->internal = bs->uri_flags.internal;
    r->valid_location = bs->uri_flags.valid_location;
    r->uri = pool_copy(r, bs->uri);
    r->args = pool_copy(r, bs->args);
    r->unparsed_uri = pool_copy(r, bs->unparsed_uri);
    // For log lines only; the raw URI holds no CR or LF (the parser refuses them).
    r->request_line = pool_copy(r, "GET " + bs->unparsed_uri + " HTTP/1.1");
    r->headers_in.server = pool_copy(r, bs->server);
    if (r->uri.data == nullptr || r->args.data == nullptr || r->unparsed_uri.data == nullptr ||
        r->request_line.data == nullptr || r->headers_in.server.data == nullptr) {
        return false;
    }
    for (const auto& [name, value] : bs->headers) {
        if (!add_request_header(r, name, value)) {
            return false;
        }
    }
    // The backend knows the session by its own id (issue mode), else by
    // the one id there is; a stateless backend behind issue mode, by none.
    const std::string_view sent_id = bs->issue_mode ? std::string_view(facts.backend_id) : bs->session_id;
    if (!sent_id.empty() && !add_request_header(r, "Mcp-Session-Id", sent_id)) {
        return false;
    }
    if (!bs->backend_last_id.empty() && !add_request_header(r, "Last-Event-ID", bs->backend_last_id)) {
        return false;
    }

    request_state* state = create_state(r, bs->zone);
    if (state == nullptr) {
        return false;
    }
    state->status = session_status::valid;
    state->key = bs->key;
    state->id = pool_copy(r, bs->session_id);
    state->issue_mode = bs->issue_mode;
    state->protocol_version = pool_copy(r, bs->protocol_version);
    state->pinned_server = pool_copy(r, facts.pinned);
    state->sent_backend_id = pool_copy(r, sent_id);
    state->backend_stream = bs;
    return state->id.data != nullptr && state->protocol_version.data != nullptr &&
           state->pinned_server.data != nullptr && state->sent_backend_id.data != nullptr;
}

// Opens one GET to the backend; false when it could not even be made.
bool open_request(backend_stream* bs)
{
    store_facts facts;
    {
        session_store::heal_facts found = session_store(*bs->zone).heal_facts_of(bs->key);
        if (!found.found) {
            return false;
        }
        facts.backend_id = std::move(found.backend_id);
        facts.pinned = std::move(found.pinned);
    }
    auto* cscf = static_cast<ngx_http_core_srv_conf_t*>(bs->srv_conf[ngx_http_core_module.ctx_index]);

    // One end of a socket pair, the other closed at once: a connected
    // socket, so what nginx does to a client's at its end (shutdown() for
    // a lingering close, SO_LINGER) works on it too.
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_socket_errno,
                      "mcp_session: socketpair() failed for holding a backend's stream");
        return false;
    }
    close(pair[1]);
    const int fd = pair[0];
    ngx_connection_t* c = ngx_get_connection(fd, ngx_cycle->log);
    if (c == nullptr) {
        close(fd);
        return false;
    }
    auto give_up = [c]() {
        ngx_pool_t* pool = c->pool;
        ngx_close_connection(c);
        if (pool != nullptr) {
            ngx_destroy_pool(pool);
        }
        return false;
    };
    c->pool = ngx_create_pool(1024, ngx_cycle->log);
    if (c->pool == nullptr) {
        return give_up();
    }
    auto* log = static_cast<ngx_log_t*>(ngx_palloc(c->pool, sizeof(ngx_log_t)));
    auto* log_ctx = static_cast<ngx_http_log_ctx_t*>(ngx_pcalloc(c->pool, sizeof(ngx_http_log_ctx_t)));
    auto* hc = static_cast<ngx_http_connection_t*>(ngx_pcalloc(c->pool, sizeof(ngx_http_connection_t)));
    if (log == nullptr || log_ctx == nullptr || hc == nullptr ||
        !copy_sockaddr(c->pool, bs->client_sockaddr, &c->sockaddr, &c->socklen) ||
        !copy_sockaddr(c->pool, bs->local_sockaddr, &c->local_sockaddr, &c->local_socklen)) {
        return give_up();
    }
    c->addr_text = pool_copy(c->pool, bs->client_text);
    if (c->addr_text.data == nullptr) {
        return give_up();
    }
    *log = *ngx_cycle->log;
    log->handler = describe;
    log->data = log_ctx;
    log->action = nullptr;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    log->connection = c->number;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->log_error = NGX_ERROR_INFO;
    c->start_time = ngx_current_msec;
    c->listening = bs->listening;
    c->type = SOCK_STREAM;
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->read->handler = on_connection_read;
    c->write->handler = ngx_http_empty_handler;
    // Never registered with epoll, but marked so: the upstream adds the
    // client connection's events only when they are not active. Always
    // writable: every write "succeeds" (the filters keep the answer), so
    // no send timer is ever armed.
    c->read->active = 1;
    c->write->active = 1;
    c->write->ready = 1;
    c->idle = 1;  // tells it when the worker starts exiting
    hc->conf_ctx = bs->conf_ctx;
    hc->addr_conf = bs->addr_conf;

    ngx_pool_t* pool = ngx_create_pool(cscf->request_pool_size, log);
    auto* r = pool == nullptr ? nullptr : static_cast<ngx_http_request_t*>(ngx_pcalloc(pool, sizeof(ngx_http_request_t)));
    ngx_pool_cleanup_t* freed = r == nullptr ? nullptr : ngx_pool_cleanup_add(pool, 0);
    if (freed == nullptr) {
        if (pool != nullptr) {
            ngx_destroy_pool(pool);
        }
        return give_up();
    }
    // From here nginx's own close frees everything: count it as nginx
    // counts a connection it accepted (ngx_http_close_connection uncounts it).
#if (NGX_STAT_STUB)
    (void)ngx_atomic_fetch_add(ngx_stat_active, 1);
#endif
    r->pool = pool;
    r->http_connection = hc;
    r->connection = c;
    r->main_conf = bs->main_conf;
    r->srv_conf = bs->srv_conf;
    r->loc_conf = bs->loc_conf;
    r->logged = 1;  // nginx's own request: no access log line
    c->data = r;
    c->requests++;
    log_ctx->connection = c;
    log_ctx->request = r;
    log_ctx->current_request = r;
    freed->handler = on_request_freed;
    freed->data = bs;
    bs->request = r;
    bs->streaming = false;
    bs->next = backend_stream::after_close::reopen;
    bs->opened_ms = now_ms();
    bs->reader.emplace(bs->event_max_size);
    bs->oversized_seen = 0;

    bool filled = false;
    try {
        filled = fill_request(r, bs, facts);
    } catch (...) {
    }
    if (!filled) {
        ngx_http_free_request(r, 0);  // posts `closed`: tried again later
        ngx_http_close_connection(c);
        return true;
    }
    event_store(*bs->zone).note_backend_stream_opened();
    // As the content phase runs it (the client's GET passed the phases).
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    ngx_http_finalize_request(r, clcf->handler(r));
    ngx_http_run_posted_requests(c);
    return true;
}

ngx_msec_t reopen_delay(backend_stream* bs)
{
    // The backend's retry: is its own reconnection time; failures in a
    // row double it, up to a bound.
    ngx_msec_t delay = bs->retry_ms ? static_cast<ngx_msec_t>(std::clamp<std::uint64_t>(
                                          *bs->retry_ms, shortest_reopen_delay, longest_reopen_delay))
                                    : first_reopen_delay;
    for (unsigned i = 0; i < bs->failures && delay < longest_reopen_delay; ++i) {
        delay *= 2;
    }
    return std::min(delay, longest_reopen_delay);
}

// Whether a client still needs the stream: one is open, or one was within
// the grace period. Updates the grace clock.
bool still_needed(backend_stream* bs)
{
    const mcp_session::unix_ms now = now_ms();
    const std::optional<bool> listened = event_store(*bs->zone).backend_stream_listened(bs->key, now);
    if (!listened) {
        return false;  // the session ended
    }
    if (*listened) {
        bs->unlistened_since = 0;
        return true;
    }
    if (bs->unlistened_since == 0) {
        // At most one check period after the client stream closed: the
        // grace counted from here is never shorter than configured.
        bs->unlistened_since = now;
    }
    return now - bs->unlistened_since < static_cast<mcp_session::unix_ms>(bs->grace);
}

ngx_msec_t check_period(const backend_stream* bs)
{
    return std::clamp<ngx_msec_t>(bs->grace / 4, 250, 5000);
}

void on_check(ngx_event_t* ev) noexcept
{
    auto* bs = static_cast<backend_stream*>(ev->data);
    bool needed = false;
    try {
        needed = still_needed(bs);
    } catch (...) {
    }
    if (!needed || ngx_exiting) {
        stop(bs);
        return;
    }
    ngx_add_timer(&bs->check, check_period(bs));
}

void schedule_reopen(backend_stream* bs)
{
    ngx_add_timer(&bs->reopen, reopen_delay(bs));
}

void on_reopen(ngx_event_t* ev) noexcept
{
    auto* bs = static_cast<backend_stream*>(ev->data);
    bool needed = false;
    bool opened = false;
    try {
        needed = !ngx_exiting && still_needed(bs);
        opened = needed && open_request(bs);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "mcp_session: reopening a backend's stream failed: %s", e.what());
    }
    if (!needed) {
        finish(bs);
    } else if (!opened) {
        // No connection or socket to spare just now: a client still listens.
        bs->failures = std::min(bs->failures + 1, 16u);
        schedule_reopen(bs);
    }
}

void on_closed(ngx_event_t* ev) noexcept
{
    auto* bs = static_cast<backend_stream*>(ev->data);
    if (bs->stopping || ngx_exiting || bs->next != backend_stream::after_close::reopen) {
        finish(bs);
        return;
    }
    const bool stable = bs->streaming && now_ms() - bs->opened_ms >= stable_stream_ms;
    bs->failures = stable ? 0 : std::min(bs->failures + 1, 16u);
    bool needed = false;
    try {
        needed = still_needed(bs);
    } catch (...) {
    }
    if (!needed) {
        finish(bs);
        return;
    }
    schedule_reopen(bs);
}

void init_event(ngx_event_t& ev, ngx_event_handler_pt handler, backend_stream* bs)
{
    ev.handler = handler;
    ev.data = bs;
    ev.log = ngx_cycle->log;
    ev.cancelable = 1;  // never what keeps an exiting worker alive
}

// Copies what every GET of the holding needs from the client's stream GET.
void copy_template(backend_stream* bs, ngx_http_request_t* r, request_state* state)
{
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    bs->zone = state->zone;
    bs->key = state->key;
    bs->registry_key = registry_key_of(state->zone, state->key);
    bs->session_id.assign(to_view(state->id));
    bs->issue_mode = state->issue_mode;
    bs->grace = lcf->stream_grace;
    bs->event_max_size = lcf->event_max_size;
    bs->main_conf = r->main_conf;
    bs->srv_conf = r->srv_conf;
    bs->loc_conf = r->loc_conf;
    bs->conf_ctx = r->http_connection->conf_ctx;
    bs->addr_conf = r->http_connection->addr_conf;
    ngx_connection_t* c = r->connection;
    bs->listening = c->listening;
    bs->uri.assign(to_view(r->uri));
    bs->args.assign(to_view(r->args));
    bs->unparsed_uri.assign(to_view(r->unparsed_uri));
    bs->uri_flags.valid_unparsed_uri = r->valid_unparsed_uri;
    bs->uri_flags.quoted_uri = r->quoted_uri;
    bs->uri_flags.plus_in_uri = r->plus_in_uri;
    bs->uri_flags.empty_path_in_uri = r->empty_path_in_uri;
    bs->uri_flags.internal = r->internal;
    bs->uri_flags.valid_location = r->valid_location;
    bs->server.assign(to_view(r->headers_in.server));
    bs->protocol_version.assign(to_view(state->protocol_version));
    std::size_t copied = 0;
    for (ngx_list_part_t* part = &r->headers_in.headers.part; part != nullptr; part = part->next) {
        auto* h = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; ++i) {
            const std::string_view name = to_view(h[i].key);
            if (h[i].hash == 0 || is_replaced_header(name)) {
                continue;
            }
            if (copied + name.size() + h[i].value.len > max_copied_header_bytes) {
                continue;  // the rest may still fit (an Authorization after a huge cookie)
            }
            copied += name.size() + h[i].value.len;
            bs->headers.emplace_back(name, to_view(h[i].value));
        }
    }
    if (c->sockaddr != nullptr) {
        bs->client_sockaddr.assign(reinterpret_cast<const char*>(c->sockaddr), c->socklen);
    }
    if (ngx_connection_local_sockaddr(c, nullptr, 0) == NGX_OK && c->local_sockaddr != nullptr) {
        bs->local_sockaddr.assign(reinterpret_cast<const char*>(c->local_sockaddr), c->local_socklen);
    }
    bs->client_text.assign(to_view(c->addr_text));
}

}  // namespace

void hold_backend_stream(ngx_http_request_t* r, request_state* state) noexcept
{
    if (r != r->main || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    if (clcf->handler == nullptr || r->http_connection == nullptr || clcf->post_action.data != nullptr) {
        return;  // nothing here proxies to a backend (post_action would redirect nginx's own GETs)
    }
    backend_stream* bs = nullptr;
    try {
        const std::string registry_key = registry_key_of(state->zone, state->key);
        if (held_streams.count(registry_key) != 0) {
            return;  // this worker holds it already: its checks see the new client
        }
        using claim = event_store::backend_stream_claim;
        const claim claimed = event_store(*state->zone).claim_backend_stream(state->key, ngx_pid);
        if (claimed != claim::claimed && claimed != claim::held_here) {
            return;
        }
        bs = new backend_stream();
        copy_template(bs, r, state);
        held_streams.emplace(bs->registry_key, bs);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: holding the backend's stream failed: %s", e.what());
        if (bs != nullptr) {
            finish(bs);  // gives the claim back
        }
        return;
    }
    init_event(bs->check, on_check, bs);
    init_event(bs->reopen, on_reopen, bs);
    init_event(bs->closed, on_closed, bs);
    ngx_add_timer(&bs->check, check_period(bs));
    bool opened = false;
    try {
        opened = open_request(bs);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: opening the backend's stream failed: %s", e.what());
    }
    if (!opened) {
        bs->failures = 1;
        schedule_reopen(bs);
    }
}

ngx_int_t backend_stream_header_filter(ngx_http_request_t* r, request_state* state) noexcept
{
    backend_stream* bs = state->backend_stream;
    r->header_sent = 1;  // as the header filter that writes it would
    const ngx_uint_t status = r->headers_out.status;
    const bool from_backend = r->upstream != nullptr && r->upstream->headers_in.status_n != 0;
    if (from_backend && status == NGX_HTTP_OK && has_content_type(r, "text/event-stream") &&
        r->headers_out.content_encoding == nullptr) {
        bs->streaming = true;
        r->upstream->buffering = 0;  // each message is recorded as it arrives
        r->upstream->cacheable = 0;
        return NGX_OK;
    }
    r->header_only = 1;  // nothing to read on: the upstream ends now
    if (r->upstream != nullptr) {
        r->upstream->cacheable = 0;  // a session's answer is no one else's (proxy_cache)
    }
    if ((!from_backend && (status == NGX_HTTP_BAD_GATEWAY || status == NGX_HTTP_SERVICE_UNAVAILABLE ||
                           status == NGX_HTTP_GATEWAY_TIME_OUT)) ||
        (from_backend && (status >= NGX_HTTP_INTERNAL_SERVER_ERROR || status == NGX_HTTP_REQUEST_TIME_OUT ||
                          status == NGX_HTTP_TOO_MANY_REQUESTS || status == NGX_HTTP_CONFLICT))) {
        // 409: the backend holds another GET of the session open (the SDK
        // allows one), such as another node's until its grace period ends.
        bs->next = backend_stream::after_close::reopen;  // later, with backoff
        return NGX_OK;
    }
    if (from_backend && status == NGX_HTTP_NOT_ALLOWED) {
        // How a server without a stream of its own answers: the session
        // has none, and no worker asks again (until a heal gives it a new
        // backend session).
        bs->next = backend_stream::after_close::absent;
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "mcp_session: the backend answered the session's stream GET with 405: it offers no stream of "
                      "its own; only published events reach the session's stream");
        return NGX_OK;
    }
    // A lost session (404, which a heal may repair), credentials that no
    // longer pass (401, 403), nginx's own 500: not asked again until a
    // client stream of the session opens.
    bs->next = backend_stream::after_close::stop;
    const ngx_uint_t level =
        from_backend && (status == NGX_HTTP_UNAUTHORIZED || status == NGX_HTTP_FORBIDDEN) ? NGX_LOG_WARN : NGX_LOG_INFO;
    ngx_log_error(level, r->connection->log, 0,
                  "mcp_session: %s the session's stream GET with %ui%s; not asked again until a client stream of the "
                  "session opens",
                  from_backend ? "the backend answered" : "nginx answered", status,
                  from_backend && status == NGX_HTTP_OK ? " and no event stream" : "");
    return NGX_OK;
}

ngx_int_t backend_stream_body_filter(ngx_http_request_t* r, request_state* state, ngx_chain_t* in) noexcept
{
    backend_stream* bs = state->backend_stream;
    if (bs->streaming && bs->reader) {
        try {
            std::vector<std::string> messages;
            for (ngx_chain_t* cl = in; cl != nullptr; cl = cl->next) {
                ngx_buf_t* b = cl->buf;
                if (ngx_buf_in_memory(b) && b->last > b->pos) {
                    bs->reader->feed(std::string_view(reinterpret_cast<const char*>(b->pos),
                                                      static_cast<std::size_t>(b->last - b->pos)),
                                     messages);
                }
            }
            // No room: counted; the session gone: the next check ends the holding.
            const std::size_t oversized = bs->reader->oversized();
            if (shares_events(*bs->zone)) {
                // redis=: numbered by the cluster, like every event of the session.
                append_backend_messages(*bs->zone, bs->key, messages);
                messages.clear();
            }
            if (!messages.empty() || oversized > bs->oversized_seen) {
                event_store(*bs->zone).record_backend_messages(bs->key, messages, oversized - bs->oversized_seen, now_ms());
            }
            if (oversized > bs->oversized_seen) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "mcp_session: a message of the backend's stream is larger than "
                              "mcp_session_event_max_size; dropped");
                bs->oversized_seen = oversized;
            }
            bs->backend_last_id = bs->reader->last_event_id();
            bs->retry_ms = bs->reader->retry_ms();
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: recording the backend's stream failed: %s",
                          e.what());
            consume_chain(in);
            return NGX_ERROR;
        }
    }
    consume_chain(in);
    return NGX_OK;
}

void end_backend_streams() noexcept
{
    // stop() erases its own entry at most (finish), never another's; one
    // with a GET in flight, like one stopping already, finishes at its
    // `closed`, which the exiting worker's loop still runs.
    for (auto it = held_streams.begin(); it != held_streams.end();) {
        backend_stream* bs = (it++)->second;
        if (!bs->stopping) {
            stop(bs);
        }
    }
}

}  // namespace mcp_ngx
