// Header filter: the backend's answer decides what the store learns.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_store.hpp"

#include "mcp_session/message.hpp"

#include <exception>
#include <new>

namespace mcp_ngx {
namespace {

ngx_http_output_header_filter_pt next_header_filter;

bool is_success(ngx_uint_t status) { return status >= 200 && status < 300; }

// A backend that breaks the id rules breaks every session it makes, which
// one line per worker is enough to show.
void warn_unstorable_id(ngx_http_request_t* r, const zone_conf& zone, size_t length)
{
    static bool warned = false;
    if (warned) {
        return;
    }
    warned = true;
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "mcp_session zone \"%V\": backend session id of %uz bytes is not tracked "
                  "(ids must be 1-%uz visible ASCII bytes); requests carrying it will get 404",
                  &zone.name, length, mcp_session::max_session_id_length);
}


void learn_session(ngx_http_request_t* r, request_state* state)
{
    const header_match header = find_header(r->headers_out.headers, "Mcp-Session-Id");
    if (header.count == 0) {
        return;  // a stateless backend, or not an initialize exchange
    }
    const ngx_str_t& value = header.first->value;
    const auto key = mcp_session::session_key::from_id(to_view(value));
    if (!key) {
        warn_unstorable_id(r, *state->zone, value.len);
        return;
    }

    session_store store(*state->zone);
    const insert_outcome outcome = store.record(*key, now_ms(), presented_binding_of(r, store));
    if (outcome.evictions_to_log > 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mcp_session zone \"%V\" is full: evicted %uz least recently used sessions",
                      &state->zone->name, outcome.evictions_to_log);
    }
    if (!outcome.stored) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "mcp_session zone \"%V\" is too small to hold a session", &state->zone->name);
        return;
    }
    state->status = session_status::created;
    state->id = value;
    state->created_ms = state->previous_access_ms = now_ms();
}

// Issue mode: clients see only nginx's ids, whatever the backend answers.
void show_nginx_id(ngx_http_request_t* r, request_state* state)
{
    const header_match header = find_header(r->headers_out.headers, "Mcp-Session-Id");
    if (header.count > 0) {
        header.first->value = state->id;
        return;
    }
    if (state->status != session_status::created) {
        return;
    }
    auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) {
        throw std::bad_alloc();
    }
    h->hash = 1;
    ngx_str_set(&h->key, "Mcp-Session-Id");
    h->value = state->id;
}

// The backend's answer to the initialize nginx made a session for: keep
// the backend's own id (if any) for rewriting, or drop a failed session.
void settle_issued_session(ngx_http_request_t* r, request_state* state)
{
    session_store store(*state->zone);
    if (!is_success(r->headers_out.status)) {
        store.remove(state->key);
        state->status = session_status::none;
        return;
    }
    const header_match header = find_header(r->headers_out.headers, "Mcp-Session-Id");
    if (header.count > 0) {
        const std::string_view backend_id = to_view(header.first->value);
        if (!mcp_session::is_storable_session_id(backend_id)) {
            warn_unstorable_id(r, *state->zone, backend_id.size());
        } else {
            store.set_backend_id(state->key, backend_id);
        }
    }
    show_nginx_id(r, state);
}

void observe_answer(ngx_http_request_t* r, request_state* state)
{
    const ngx_uint_t status = r->headers_out.status;
    if (state->issued) {
        settle_issued_session(r, state);
        return;
    }
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    if (lcf->mode == mode_issue && state->status == session_status::valid) {
        show_nginx_id(r, state);
    }
    if (state->status == session_status::none && is_success(status)) {
        learn_session(r, state);
        return;
    }
    if (state->status != session_status::valid) {
        return;
    }
    const bool ended_by_client = r->method == NGX_HTTP_DELETE && is_success(status);
    const bool gone_at_backend = status == NGX_HTTP_NOT_FOUND;
    if (ended_by_client || gone_at_backend) {
        session_store store(*state->zone);
        store.remove(state->key);
    }
}

ngx_int_t header_filter(ngx_http_request_t* r) noexcept
{
    try {
        request_state* state = state_of(r);
        if (state != nullptr && r == r->main && !state->answered_here && !state->passthrough) {
            observe_answer(r, state);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: header filter failed: %s", e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: header filter failed");
    }
    return next_header_filter(r);
}

}  // namespace

void install_header_filter() noexcept
{
    next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = header_filter;
}

}  // namespace mcp_ngx
