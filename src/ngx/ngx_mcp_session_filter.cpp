// Header filter: the backend's answer decides what the store learns.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_store.hpp"

#include <exception>

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
    const insert_outcome outcome = store.record(*key, now_ms());
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
}

void observe_answer(ngx_http_request_t* r, request_state* state)
{
    const ngx_uint_t status = r->headers_out.status;
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
        if (state != nullptr && r == r->main && !state->answered_here) {
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
