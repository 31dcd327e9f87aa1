// Header and body filters: the backend's answer decides what the store
// learns, and in issue mode no backend session id ever reaches a client.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_backend_stream.hpp"
#include "ngx_mcp_session_cluster.hpp"
#include "ngx_mcp_session_cors.hpp"
#include "ngx_mcp_session_heal.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_lost_answer.hpp"
#include "ngx_mcp_session_recorder.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_sticky.hpp"
#include "ngx_mcp_session_store.hpp"

#include "mcp_session/message.hpp"

#include <exception>
#include <new>

namespace mcp_ngx {
namespace {

ngx_http_output_header_filter_pt next_header_filter;
ngx_http_output_body_filter_pt next_body_filter;

constexpr std::string_view session_header = "Mcp-Session-Id";

bool is_success(ngx_uint_t status) { return status >= 200 && status < 300; }

// mcp_session_sticky: the session stays with the server that answered it
// well. A session not pinned yet (made before the upstream became sticky,
// or restored from an older state file) is pinned by its next 200.
void pin_to_answering_server(ngx_http_request_t* r, request_state* state, session_store& store)
{
    const std::string_view server = sticky_server_of(r);
    if (server.empty()) {
        return;
    }
    if (!store.pin(state->key, server)) {
        static time_t warned_at = 0;  // one line a minute per worker, not one per request
        if (ngx_time() - warned_at < 60) {
            return;
        }
        warned_at = ngx_time();
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mcp_session zone \"%V\": session not pinned to \"%*s\" (more than %uz servers hold "
                      "sessions, or the address is longer than %uz bytes); it is balanced per request",
                      &state->zone->name, server.size(), server.data(), mcp_session::max_status_upstreams,
                      mcp_session::max_upstream_name);
        return;
    }
    state->pinned_server.data = r->upstream->peer.name->data;  // lives as long as the cycle
    state->pinned_server.len = server.size();
}

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

void log_evictions(ngx_http_request_t* r, const zone_conf& zone, const insert_outcome& outcome)
{
    if (outcome.evictions_to_log > 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mcp_session zone \"%V\" is full: evicted %uz least recently used sessions", &zone.name,
                      outcome.evictions_to_log);
    }
}

// Learn mode: the session id of a successful sessionless answer.
void learn_session(ngx_http_request_t* r, request_state* state)
{
    const header_match header = find_header(r->headers_out.headers, session_header);
    if (header.count == 0) {
        return;  // a stateless backend, or not an initialize exchange
    }
    const ngx_str_t& value = header.first->value;
    const auto key = header.count == 1 ? mcp_session::session_key::from_id(to_view(value)) : std::nullopt;
    if (!key) {
        warn_unstorable_id(r, *state->zone, value.len);
        return;
    }

    session_store store(*state->zone);
    const insert_outcome outcome = store.record(*key, now_ms(), presented_binding_of(r, store));
    log_evictions(r, *state->zone, outcome);
    const bool known = outcome.already_known;
    if (!outcome.stored) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "mcp_session zone \"%V\" is too small to hold a session", &state->zone->name);
        return;
    }
    state->status = session_status::created;
    state->key = *key;
    state->id = value;
    state->created_ms = state->previous_access_ms = now_ms();
    if (!known) {
        // A live session's id answered again (a backend that reuses or
        // echoes ids) keeps the pin it has: this answer may be another server's.
        pin_to_answering_server(r, state, store);
    }
}

// Issue mode: the answer carries nginx's id for a session this request
// made or named, and no other Mcp-Session-Id (several, a backend's own,
// one answered to an undecidable or modern request) survives.
void show_only_nginx_id(ngx_http_request_t* r, request_state* state)
{
    const bool carries_ours = (state->issued && state->status == session_status::created) ||
                              state->status == session_status::valid;
    bool shown = false;
    for_each_header(r->headers_out.headers, session_header, [&](ngx_table_elt_t& h) {
        if (carries_ours && !shown) {
            h.value = state->id;
            shown = true;
        } else {
            h.hash = 0;  // removed, as nginx's own filters remove headers
        }
    });
    // A new session is announced even when the backend keeps no id itself.
    if (carries_ours && !shown && state->issued) {
        if (!add_response_header(r, ngx_string("Mcp-Session-Id"), state->id)) {
            throw std::bad_alloc();
        }
    }
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
    const header_match header = find_header(r->headers_out.headers, session_header);
    if (header.count > 1) {
        // Which one would the backend expect back? Neither can be trusted.
        store.remove(state->key);
        state->status = session_status::none;
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mcp_session zone \"%V\": the backend answered initialize with %ui Mcp-Session-Id headers; "
                      "no session made", &state->zone->name, header.count);
        return;
    }
    if (header.count == 1) {
        const std::string_view backend_id = to_view(header.first->value);
        if (!mcp_session::is_storable_session_id(backend_id)) {
            warn_unstorable_id(r, *state->zone, backend_id.size());
        } else {
            store.set_backend_id(state->key, backend_id, to_view(state->initialize_body));
        }
    }
    pin_to_answering_server(r, state, store);
}


// True when the answer is held until its body shows whether the backend
// lost the session (ngx_mcp_session_lost_answer.cpp).
bool observe_answer(ngx_http_request_t* r, request_state* state)
{
    const ngx_uint_t status = r->headers_out.status;
    // Only an answer that came from the backend can teach or end anything:
    // nginx's own pages (return, error_page targets, our answers) cannot.
    const bool backend = answered_by_backend(r);
    bool held = false;
    if (backend && state->issued) {
        settle_issued_session(r, state);
        if (state->status == session_status::created) {
            share_session(*state->zone, state->key);  // with its backend id and pin
        }
    } else if (backend && !state->issue_mode && state->status == session_status::none && is_success(status)) {
        learn_session(r, state);  // passthrough too: a client must never hold an id nginx does not know
        if (state->status == session_status::created) {
            share_session(*state->zone, state->key);
        }
    } else if (backend && state->status == session_status::valid) {
        if (r->method == NGX_HTTP_DELETE && is_success(status)) {
            session_store(*state->zone).remove(state->key);
            end_shared_session(*state->zone, state->key);
        } else if (status == NGX_HTTP_OK && state->pinned_server.len == 0 && !sticky_server_of(r).empty()) {
            session_store store(*state->zone);
            pin_to_answering_server(r, state, store);
            share_session(*state->zone, state->key);
        } else {
            held = hold_if_session_may_be_lost(r, state);
        }
    }
    if (state->issue_mode) {
        show_only_nginx_id(r, state);
    }
    return held;
}

// mcp_session_sticky found the session's server gone (down, failed,
// removed) or could not reach it, and nginx made the error page itself:
// no answer header ever came from a backend for this request.
bool pinned_server_was_gone(ngx_http_request_t* r, request_state* state)
{
    if (!state->pinned_server_gone || state->status != session_status::valid ||
        r->headers_out.status < NGX_HTTP_INTERNAL_SERVER_ERROR ||
        (r->upstream != nullptr && r->upstream->headers_in.status_n != 0)) {
        return false;
    }
    if (r->error_page && r->internal) {
        // The operator's error_page answers (a maintenance page): it goes
        // out as written, and the session ends all the same, so the
        // client's next request gets the 404 and re-initializes.
        if (session_store(*state->zone)
                .end_lost(state->key, session_store::loss::replica, to_view(state->sent_backend_id))) {
            end_shared_session(*state->zone, state->key);
        }
        state->status = session_status::unknown;
        return false;
    }
    return true;
}

ngx_int_t header_filter(ngx_http_request_t* r) noexcept
{
    try {
        request_state* state = state_of(r);
        if (state != nullptr && state->backend_stream != nullptr) {
            return backend_stream_header_filter(r, state);  // nginx's own GET: nothing goes to a client
        }
        if (state != nullptr && r == r->main && !state->answered_here) {
            if (heal_owns_answer(state)) {
                return heal_header_filter(r, state, next_header_filter);
            }
            if (pinned_server_was_gone(r, state)) {
                if (start_heal(r, state, session_loss_cause::replica_gone)) {
                    return NGX_OK;  // nginx's error page goes nowhere: the healed session answers
                }
                return answer_session_gone(r, state, session_loss_cause::replica_gone, next_header_filter);
            }
            if (observe_answer(r, state)) {
                return NGX_OK;  // the body filter sends the headers once the body is judged
            }
            start_post_recording(r, state);
        }
        add_cors_to_own_answer(r, state);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: header filter failed: %s", e.what());
        return NGX_ERROR;  // an issue-mode answer must not go out unsanitised
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: header filter failed");
        return NGX_ERROR;
    }
    return next_header_filter(r);
}

ngx_int_t body_filter(ngx_http_request_t* r, ngx_chain_t* in) noexcept
{
    request_state* state = nullptr;
    try {
        state = r == r->main ? state_of(r) : nullptr;
        if (state != nullptr && state->backend_stream != nullptr) {
            return backend_stream_body_filter(r, state, in);
        }
        if (heal_owns_answer(state)) {
            return heal_body_filter(r, state, in);
        }
        if (lost_answer_engaged(state)) {
            return lost_answer_body(r, state, in, next_header_filter, next_body_filter);
        }
        if (state != nullptr && state->recorder != nullptr) {
            return relay_post_stream(r, state, in, next_body_filter);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: body filter failed: %s", e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: body filter failed");
    }
    if (state != nullptr && (state->recorder != nullptr || lost_answer_engaged(state))) {
        return NGX_ERROR;  // a relayed or held answer cannot go on raw
    }
    return next_body_filter(r, in);
}

}  // namespace

void install_filters() noexcept
{
    next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = header_filter;
    next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = body_filter;
}

}  // namespace mcp_ngx
