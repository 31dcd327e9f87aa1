// The answer watch: follows a backend's answer to a POST in an
// mcp_session location (a JSON body's first bytes, or an SSE answer's
// event data, both bounded by the core) and counts what it reports in the
// zone's traffic table. Buffers pass on untouched.
#include "ngx_mcp_session_answer_watch.hpp"

#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_lost_answer.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_traffic.hpp"

#include "mcp_session/answer_watch.hpp"

#include <exception>
#include <new>

namespace mcp_ngx {

// In the request pool; the pool cleanup runs the destructor (the watch
// holds a std::string, capped at answer_watch_prefix).
struct answer_watch_ctx {
    mcp_session::answer_watch watch;
    mcp_session::error_counts recorded;  // already in the zone: an SSE answer counts event by event
    bool fed_by_relay = false;           // take_over_answer_watch
};

namespace {

ngx_http_output_header_filter_pt next_header_filter;
ngx_http_output_body_filter_pt next_body_filter;

void destroy_watch(void* data) noexcept { static_cast<answer_watch_ctx*>(data)->~answer_watch_ctx(); }

void start_watch(ngx_http_request_t* r, request_state* state)
{
    if (r->method != NGX_HTTP_POST || !answered_by_backend(r) || r->header_only ||
        r->headers_out.content_encoding != nullptr) {
        return;  // compressed bodies are not read: the watch never inflates
    }
    mcp_session::answer_watch::form form;
    if (has_content_type(r, "application/json")) {
        form = mcp_session::answer_watch::form::json;
    } else if (has_content_type(r, "text/event-stream")) {
        form = mcp_session::answer_watch::form::event_stream;
    } else {
        return;
    }
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(r->pool, sizeof(answer_watch_ctx));
    if (cleanup == nullptr) {
        return;  // uncounted, never failed
    }
    state->answer_watch = new (cleanup->data) answer_watch_ctx{
        mcp_session::answer_watch(form, to_view(state->method) == "tools/call"), {}};
    cleanup->handler = destroy_watch;
}

ngx_int_t header_filter(ngx_http_request_t* r) noexcept
{
    try {
        request_state* state = r == r->main ? state_of(r) : nullptr;
        if (state != nullptr && !state->answered_here && state->answer_watch == nullptr && state->zone != nullptr &&
            !lost_answer_replaced(state)) {  // nginx's 404 in place of the backend's answer is no backend error
            start_watch(r, state);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: answer watch failed: %s", e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: answer watch failed");
    }
    return next_header_filter(r);
}

void watch(request_state* state, ngx_chain_t* in)
{
    answer_watch_ctx& ctx = *state->answer_watch;
    for (ngx_chain_t* cl = in; cl != nullptr && !ctx.watch.done(); cl = cl->next) {
        const ngx_buf_t* b = cl->buf;
        const bool last = b->last_buf != 0;
        if (ngx_buf_in_memory(b) && !b->in_file) {
            ctx.watch.feed(std::string_view(reinterpret_cast<const char*>(b->pos), static_cast<size_t>(b->last - b->pos)),
                           last);
        } else if (b->in_file || last) {
            ctx.watch.feed({}, true);  // a body in a temp file is not read back: what came in memory is all
        }
    }
    record_answer_counts(state);
}

ngx_int_t body_filter(ngx_http_request_t* r, ngx_chain_t* in) noexcept
{
    try {
        request_state* state = r == r->main ? state_of(r) : nullptr;
        if (state != nullptr && state->answer_watch != nullptr && !state->answer_watch->fed_by_relay &&
            !state->answer_watch->watch.done() && in != nullptr) {
            watch(state, in);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: answer watch failed: %s", e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: answer watch failed");
    }
    return next_body_filter(r, in);
}

}  // namespace

mcp_session::answer_watch* take_over_answer_watch(request_state* state)
{
    if (state->answer_watch == nullptr) {
        return nullptr;
    }
    state->answer_watch->fed_by_relay = true;
    return &state->answer_watch->watch;
}

void hand_back_answer_watch(request_state* state)
{
    if (state->answer_watch != nullptr) {
        state->answer_watch->fed_by_relay = false;
    }
}

void record_answer_counts(request_state* state)
{
    if (state->answer_watch == nullptr) {
        return;
    }
    answer_watch_ctx& ctx = *state->answer_watch;
    mcp_session::error_counts fresh{};
    bool any = false;
    for (std::size_t c = 0; c < fresh.size(); ++c) {
        fresh[c] = ctx.watch.counts()[c] - ctx.recorded[c];
        any |= fresh[c] != 0;
    }
    if (any) {
        record_answer_errors(*state->zone, to_view(state->method), fresh);
        ctx.recorded = ctx.watch.counts();
    }
}

void install_answer_watch() noexcept
{
    next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = header_filter;
    next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = body_filter;
}

}  // namespace mcp_ngx
