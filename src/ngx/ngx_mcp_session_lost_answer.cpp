// "The backend lost the session" (see the header): the headers of a
// candidate answer wait until its body has been judged, so the client
// gets either the backend's answer unchanged or nginx's 404, never both.
#include "ngx_mcp_session_lost_answer.hpp"

#include "ngx_mcp_session_cluster.hpp"
#include "ngx_mcp_session_cors.hpp"
#include "ngx_mcp_session_heal.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_store.hpp"

#include "mcp_session/backend_answer.hpp"
#include "mcp_session/error_body.hpp"

#include <string>

namespace mcp_ngx {

// In the request pool (trivially destructible: the pool frees it).
struct lost_answer_ctx {
    enum class phase : std::uint8_t {
        holding,    // headers held, body bytes being copied
        replacing,  // our 404 headers sent; its body goes out at the answer's last_buf
        passing,    // decided: every further call goes on untouched
        swallowing, // our 404 body sent: the rest of the answer is dropped
        failed,     // a next filter failed: nothing more goes out
    };
    phase at;
    u_char* kept;      // copy of the held body (answer_body_limit bytes of room)
    size_t kept_len;
    ngx_str_t our_body;  // the 404's body, once decided
    bool replaced;       // r->headers_out became the 404
};

namespace {

constexpr std::string_view session_header = "Mcp-Session-Id";

const mcp_session::lost_session_rules& rules_of(ngx_http_request_t* r)
{
    const auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    return lcf->lost_session_400;
}

ngx_chain_t* memory_link(ngx_http_request_t* r, u_char* data, size_t len, bool last)
{
    ngx_chain_t* cl = ngx_alloc_chain_link(r->pool);
    ngx_buf_t* b = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
    if (cl == nullptr || b == nullptr) {
        return nullptr;
    }
    b->pos = data;
    b->last = data + len;
    b->memory = len > 0 ? 1 : 0;
    b->last_buf = last ? 1 : 0;
    b->last_in_chain = last ? 1 : 0;
    cl->buf = b;
    cl->next = nullptr;
    return cl;
}

// Removes the session and turns r->headers_out into the gate's 404
// (false: out of memory, nothing changed but the zone).
bool become_not_found(ngx_http_request_t* r, request_state* state, lost_answer_ctx* ctx, session_loss_cause cause)
{
    const std::string body = mcp_session::session_not_found_body(to_view(state->id), to_view(state->request_id));
    ctx->our_body = pool_copy(r, body);
    if (ctx->our_body.data == nullptr && !body.empty()) {
        return false;
    }
    if (session_store(*state->zone)
            .end_lost(state->key, cause == session_loss_cause::backend_lost ? session_store::loss::backend
                                                                            : session_store::loss::replica,
                      to_view(state->sent_backend_id))) {
        end_shared_session(*state->zone, state->key);
    }

    ctx->replaced = true;
    ngx_http_headers_out_t& out = r->headers_out;
    out.status = NGX_HTTP_NOT_FOUND;
    out.status_line.len = 0;  // the upstream's own "400 Bad Request" line
    out.status_line.data = nullptr;
    ngx_str_set(&out.content_type, "application/json");
    out.content_type_len = out.content_type.len;
    out.content_type_lowcase = nullptr;
    out.content_type_hash = 0;
    out.charset.len = 0;
    ngx_http_clear_content_length(r);
    out.content_length_n = static_cast<off_t>(ctx->our_body.len);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);
    if (out.content_encoding != nullptr) {
        out.content_encoding->hash = 0;
        out.content_encoding = nullptr;
    }
    if (out.content_range != nullptr) {
        out.content_range->hash = 0;
        out.content_range = nullptr;
    }
    // nginx's own 404 is never cached, as the gate's is not.
    if (out.expires != nullptr) {
        out.expires->hash = 0;
        out.expires = nullptr;
    }
    for_each_header(out.headers, "Cache-Control", [](ngx_table_elt_t& h) { h.hash = 0; });
    // The session is gone: no id of it may reach the client.
    for_each_header(out.headers, session_header, [](ngx_table_elt_t& h) { h.hash = 0; });
    try {
        add_cors_to_replaced_answer(r);  // a browser client must be able to read the 404
    } catch (const std::bad_alloc&) {
        // the 404 goes out without CORS headers: the session is gone either way
    }
    return true;
}

ngx_int_t send_headers(ngx_http_request_t* r, lost_answer_ctx* ctx, lost_answer_ctx::phase next,
                       ngx_http_output_header_filter_pt next_header)
{
    ctx->at = next;  // before the call: whatever it returns, headers never go twice
    const ngx_int_t rc = next_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        ctx->at = lost_answer_ctx::phase::failed;
    }
    return rc;
}

// The 404's body, with the last_buf the answer's last call carried.
ngx_int_t send_our_body(ngx_http_request_t* r, lost_answer_ctx* ctx, ngx_http_output_body_filter_pt next_body)
{
    ctx->at = lost_answer_ctx::phase::swallowing;
    ngx_chain_t* out = memory_link(r, ctx->our_body.data, ctx->our_body.len, true);
    if (out == nullptr) {
        ctx->at = lost_answer_ctx::phase::failed;
        return NGX_ERROR;
    }
    return next_body(r, out);
}

// Not ours to judge after all: the original headers, what was copied
// before this call, then this call's buffers untouched.
ngx_int_t pass_on(ngx_http_request_t* r, lost_answer_ctx* ctx, size_t copied_before, ngx_chain_t* in,
                  ngx_http_output_header_filter_pt next_header, ngx_http_output_body_filter_pt next_body)
{
    const ngx_int_t rc = send_headers(r, ctx, lost_answer_ctx::phase::passing, next_header);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }
    if (r->header_only) {
        consume_chain(in);
        return rc;
    }
    ngx_chain_t* out = in;
    if (copied_before > 0) {
        out = memory_link(r, ctx->kept, copied_before, false);
        if (out == nullptr) {
            ctx->at = lost_answer_ctx::phase::failed;
            return NGX_ERROR;
        }
        out->next = in;
    }
    return next_body(r, out);
}

ngx_int_t judge_held(ngx_http_request_t* r, request_state* state, lost_answer_ctx* ctx, ngx_chain_t* in,
                     ngx_http_output_header_filter_pt next_header, ngx_http_output_body_filter_pt next_body)
{
    const size_t copied_before = ctx->kept_len;
    size_t size = 0;
    bool last = false;
    bool small = true;
    for (ngx_chain_t* cl = in; cl != nullptr; cl = cl->next) {
        const ngx_buf_t* b = cl->buf;
        last |= b->last_buf != 0;
        if (b->in_file || (!ngx_buf_in_memory(b) && !ngx_buf_special(b))) {
            small = false;  // a session error is never written to a temp file
        } else if (ngx_buf_in_memory(b)) {
            size += static_cast<size_t>(b->last - b->pos);
        }
    }
    if (!small || ctx->kept_len + size > mcp_session::answer_body_limit) {
        return pass_on(r, ctx, copied_before, in, next_header, next_body);
    }
    for (ngx_chain_t* cl = in; cl != nullptr; cl = cl->next) {
        const ngx_buf_t* b = cl->buf;
        if (ngx_buf_in_memory(b) && b->last > b->pos) {
            // A copy: the upstream reuses its buffers once we mark them consumed.
            ngx_memcpy(ctx->kept + ctx->kept_len, b->pos, static_cast<size_t>(b->last - b->pos));
            ctx->kept_len += static_cast<size_t>(b->last - b->pos);
        }
    }
    if (!last) {
        consume_chain(in);
        return NGX_OK;
    }
    const std::string_view body(reinterpret_cast<const char*>(ctx->kept), ctx->kept_len);
    const auto verdict =
        mcp_session::classify_lost_session(static_cast<int>(r->headers_out.status), body, rules_of(r));
    if (verdict == mcp_session::session_loss_verdict::kept) {
        return pass_on(r, ctx, copied_before, in, next_header, next_body);
    }
    if (start_heal(r, state, session_loss_cause::backend_lost)) {
        consume_chain(in);  // the client gets the answer of the healed session instead
        return NGX_OK;
    }
    if (!become_not_found(r, state, ctx, session_loss_cause::backend_lost)) {
        return pass_on(r, ctx, copied_before, in, next_header, next_body);
    }
    consume_chain(in);
    const ngx_int_t rc = send_headers(r, ctx, lost_answer_ctx::phase::replacing, next_header);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }
    if (r->header_only) {
        ctx->at = lost_answer_ctx::phase::swallowing;
        return rc;
    }
    return send_our_body(r, ctx, next_body);
}

}  // namespace

bool hold_if_session_may_be_lost(ngx_http_request_t* r, request_state* state)
{
    const ngx_uint_t status = r->headers_out.status;
    if (r != r->main || state->lost_answer != nullptr || state->status != session_status::valid ||
        !answered_by_backend(r) || (status != NGX_HTTP_NOT_FOUND && status != NGX_HTTP_BAD_REQUEST) ||
        r->header_only || r->method == NGX_HTTP_HEAD || r->headers_out.content_encoding != nullptr ||
        !has_content_type(r, "application/json") ||
        r->headers_out.content_length_n > static_cast<off_t>(mcp_session::answer_body_limit)) {
        return false;
    }
    auto* ctx = static_cast<lost_answer_ctx*>(ngx_pcalloc(r->pool, sizeof(lost_answer_ctx)));
    u_char* kept = static_cast<u_char*>(ngx_pnalloc(r->pool, mcp_session::answer_body_limit));
    if (ctx == nullptr || kept == nullptr) {
        return false;  // judged by nobody: the answer goes on as it is
    }
    ctx->at = lost_answer_ctx::phase::holding;
    ctx->kept = kept;
    state->lost_answer = ctx;
    return true;
}

bool lost_answer_engaged(const request_state* state) { return state != nullptr && state->lost_answer != nullptr; }

bool lost_answer_replaced(const request_state* state)
{
    return lost_answer_engaged(state) && state->lost_answer->replaced;
}

ngx_int_t lost_answer_body(ngx_http_request_t* r, request_state* state, ngx_chain_t* in,
                           ngx_http_output_header_filter_pt next_header, ngx_http_output_body_filter_pt next_body)
{
    lost_answer_ctx* ctx = state->lost_answer;
    switch (ctx->at) {
    case lost_answer_ctx::phase::holding:
        return in == nullptr ? NGX_OK : judge_held(r, state, ctx, in, next_header, next_body);
    case lost_answer_ctx::phase::replacing: {
        if (in == nullptr) {
            return next_body(r, nullptr);  // flushes our headers if they were still queued
        }
        bool last = false;
        for (ngx_chain_t* cl = in; cl != nullptr; cl = cl->next) {
            last |= cl->buf->last_buf != 0;
        }
        consume_chain(in);
        return last ? send_our_body(r, ctx, next_body) : NGX_OK;
    }
    case lost_answer_ctx::phase::passing:
        return next_body(r, in);
    case lost_answer_ctx::phase::swallowing:
        if (in == nullptr) {
            return next_body(r, nullptr);  // flushes what is still queued of ours
        }
        consume_chain(in);
        return NGX_OK;
    case lost_answer_ctx::phase::failed:
        consume_chain(in);
        return NGX_ERROR;
    }
    return NGX_ERROR;
}

ngx_int_t answer_session_gone(ngx_http_request_t* r, request_state* state, session_loss_cause cause,
                              ngx_http_output_header_filter_pt next_header)
{
    if (state->lost_answer != nullptr) {
        return NGX_ERROR;  // a second call would send headers twice
    }
    auto* ctx = static_cast<lost_answer_ctx*>(ngx_pcalloc(r->pool, sizeof(lost_answer_ctx)));
    if (ctx == nullptr) {
        return NGX_ERROR;
    }
    state->lost_answer = ctx;
    ctx->at = lost_answer_ctx::phase::failed;
    if (!become_not_found(r, state, ctx, cause)) {
        return NGX_ERROR;
    }
    const ngx_int_t rc = send_headers(r, ctx, lost_answer_ctx::phase::replacing, next_header);
    if (r->header_only && ctx->at == lost_answer_ctx::phase::replacing) {
        ctx->at = lost_answer_ctx::phase::swallowing;  // HEAD: no body of ours, whatever the write returned
    }
    return rc;
}

}  // namespace mcp_ngx
