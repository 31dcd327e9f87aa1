// The session gate, in the precontent phase (after nginx's access control
// has decided): the protocol rules (Origin, revision), then the session a
// request names must be live and bound to the same principal and tenant.
// In issue mode an initialize without a session gets one of nginx's ids.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_cluster.hpp"
#include "ngx_mcp_session_cluster_store.hpp"
#include "ngx_mcp_session_heal.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_policy.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_store.hpp"

#include "mcp_session/error_body.hpp"
#include "mcp_session/event.hpp"
#include "mcp_session/message.hpp"
#include "mcp_session/protocol.hpp"
#include "mcp_session/session_id.hpp"
#include "mcp_session/sse_relay.hpp"
#include "mcp_session/text.hpp"

#include <cstring>
#include <exception>
#include <memory>

namespace mcp_ngx {
namespace {

// Made after fork (init_process): workers never share generator state.
std::unique_ptr<mcp_session::session_id_generator> id_generator;

loc_conf* conf_of(ngx_http_request_t* r)
{
    return static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
}

// nginx answered: stop the phases here and finish the request once.
ngx_int_t answer(ngx_http_request_t* r, request_state* state, ngx_uint_t status, std::string_view body)
{
    state->answered_here = true;
    ngx_http_finalize_request(r, send_json(r, status, body));
    return NGX_DONE;
}

ngx_int_t refuse(ngx_http_request_t* r, request_state* state, ngx_uint_t status, std::string_view message)
{
    return answer(r, state, status, mcp_session::transport_error_body(message, to_view(state->request_id)));
}

ngx_int_t reject_session(ngx_http_request_t* r, request_state* state, session_status status)
{
    state->status = status;
    return answer(r, state, NGX_HTTP_NOT_FOUND,
                  mcp_session::session_not_found_body(to_view(state->id), to_view(state->request_id)));
}

// A session bound to someone else: by default answered exactly like an
// unknown id, so another principal cannot tell live ids from dead ones.
ngx_int_t reject_mismatch(ngx_http_request_t* r, const loc_conf* lcf, request_state* state, lookup_result result)
{
    const bool principal = result == lookup_result::wrong_principal;
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "mcp_session zone \"%V\": a request presented a session bound to another %s",
                  &state->zone->name, principal ? "principal" : "tenant");
    if (!lcf->distinct_binding_errors) {
        return reject_session(r, state, session_status::unknown);
    }
    return principal ? refuse(r, state, NGX_HTTP_UNAUTHORIZED, "Unauthorized: the session belongs to another principal")
                     : refuse(r, state, NGX_HTTP_CONFLICT, "Conflict: the session belongs to another tenant");
}

ngx_int_t refuse_version(ngx_http_request_t* r, request_state* state, const mcp_session::protocol_verdict& verdict)
{
    const std::string message =
        verdict.era == mcp_session::protocol_era::malformed
            ? "Bad Request: MCP-Protocol-Version is not a protocol revision (expected YYYY-MM-DD)"
            : "Bad Request: Unsupported protocol version: " + verdict.version.substr(0, 10);
    return refuse(r, state, NGX_HTTP_BAD_REQUEST, message);
}


// Any Accept header that admits the stream type (HTTP/2 may split one).
bool accepts_event_stream(ngx_http_request_t* r)
{
    bool accepted = false;
    for_each_header(r->headers_in.headers, "Accept", [&](ngx_table_elt_t& h) {
        accepted |= mcp_session::accepts_event_stream(to_view(h.value));
    });
    return accepted;
}

// With mcp_session_stream on, a session's GET stream is nginx's to serve
// (from the shared ring), not the backend's.
ngx_int_t route_stream(ngx_http_request_t* r, const loc_conf* lcf, request_state* state)
{
    if (!lcf->stream || r->method != NGX_HTTP_GET) {
        return NGX_DECLINED;
    }
    if (!accepts_event_stream(r)) {
        return refuse(r, state, 406, "Not Acceptable: the client must accept text/event-stream");
    }
    // A body still arriving would be discarded under the running stream,
    // and nginx cuts such a request at lingering_timeout.
    if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
        return refuse(r, state, NGX_HTTP_BAD_REQUEST, "Bad Request: a stream GET has no body");
    }
    const header_match last = find_header(r->headers_in.headers, "Last-Event-ID");
    if (last.count > 1) {
        return refuse(r, state, NGX_HTTP_BAD_REQUEST, "Bad Request: more than one Last-Event-ID header");
    }
    if (last.count == 1) {
        const auto position = mcp_session::parse_stream_position(to_view(last.first->value));
        if (!position) {
            return refuse(r, state, NGX_HTTP_BAD_REQUEST,
                          "Bad Request: Last-Event-ID must be an event id of this session's streams");
        }
        state->last_event_id = position->index;
        state->resumed_post_stream = position->stream;
    }
    state->streamed = true;
    r->content_handler = stream_handler;  // instead of the location's proxy_pass
    return NGX_DECLINED;
}

ngx_int_t read_body_first(ngx_http_request_t* r, request_state* state);

// redis=: the session cannot be checked now. Never a 404, which would
// make the client drop a session that may be alive on another node.
ngx_int_t answer_unavailable(ngx_http_request_t* r, request_state* state)
{
    count_shared(*state->zone, &mcp_session::zone_counters::shared_unavailable);
    if (!add_retry_after_one_second(r)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    return refuse(r, state, NGX_HTTP_SERVICE_UNAVAILABLE, store_unreachable_message);
}

// redis=: a session this node holds no live copy of may be alive in the
// cluster. NGX_DONE: Redis is asked and the request waits; NGX_DECLINED:
// Redis said it is not there (the caller answers 404).
ngx_int_t consult_cluster(ngx_http_request_t* r, request_state* state, const mcp_session::session_key& key)
{
    switch (state->shared) {
    case shared_lookup::none:
        if (look_up_shared(r, state, key)) {
            return NGX_DONE;
        }
        return answer_unavailable(r, state);
    case shared_lookup::unavailable:
    case shared_lookup::pending:
        return answer_unavailable(r, state);
    case shared_lookup::absent:
    case shared_lookup::adopted:  // and gone again since: as the cluster said a moment ago
        break;
    }
    return NGX_DECLINED;
}

ngx_int_t validate_session(ngx_http_request_t* r, const loc_conf* lcf, request_state* state, ngx_table_elt_t* header)
{
    session_store store(*state->zone);
    const auto presented = mcp_session::parse_session_header(to_view(header->value));
    if (!presented) {
        store.note_rejected();
        return reject_session(r, state, session_status::unknown);
    }
    state->id.data = const_cast<u_char*>(reinterpret_cast<const u_char*>(presented->data()));
    state->id.len = presented->size();
    const auto key = mcp_session::session_key::from_id(*presented);
    if (!key) {
        store.note_rejected();
        return reject_session(r, state, session_status::unknown);  // could never have been stored
    }

    // A bare stream GET does not make a session established: a flooder's
    // initialize + GET stays in the class evicted first.
    const bool establishes = !(lcf->stream && r->method == NGX_HTTP_GET);
    const lookup_outcome found = store.validate(*key, now_ms(), presented_binding_of(r, store), establishes);
    if (found.binding_unverifiable) {
        return answer_unavailable(r, state);  // bound under the cluster's key, not known yet
    }
    switch (found.result) {
    case lookup_result::valid:
        if (found.touched) {
            note_shared_use(*state->zone, *key);
        }
        break;
    case lookup_result::expired:
    case lookup_result::unknown:
        if (state->zone->cluster != nullptr) {
            const ngx_int_t rc = consult_cluster(r, state, *key);
            if (rc != NGX_DECLINED) {
                return rc;
            }
        }
        return reject_session(r, state, found.result == lookup_result::expired ? session_status::expired
                                                                              : session_status::unknown);
    case lookup_result::wrong_principal:
    case lookup_result::wrong_tenant:
        return reject_mismatch(r, lcf, state, found.result);
    }
    state->status = session_status::valid;
    state->key = *key;
    state->created_ms = found.created_ms;
    state->previous_access_ms = found.previous_access_ms;
    if (!found.backend_id_view().empty()) {
        header->value = pool_copy(r, found.backend_id_view());  // the backend sees only its own id
        if (header->value.data == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        state->sent_backend_id = header->value;
    }
    if (!found.pinned_view().empty()) {
        state->pinned_server = pool_copy(r, found.pinned_view());  // mcp_session_sticky routes by it
        if (state->pinned_server.data == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (lcf->heal && state->issue_mode && r->method == NGX_HTTP_POST) {
        // A heal sends the body again after the answer: nginx must not
        // close its temp file once the first answer starts (the mirror
        // module's flag).
        r->preserve_body = 1;
    }
    const ngx_int_t routed = route_stream(r, lcf, state);
    if (routed == NGX_DECLINED && !state->streamed && lcf->inspect_body && r->method == NGX_HTTP_POST) {
        return read_body_first(r, state);  // for $mcp_method, $mcp_tool, $mcp_rpc_id
    }
    return routed;
}

// Issue mode: nginx makes the session before the backend sees initialize.
ngx_int_t issue_session(ngx_http_request_t* r, const loc_conf* lcf, request_state* state)
{
    const std::int64_t now = now_ms();
    const std::string id = id_generator->next(now);
    const auto key = mcp_session::session_key::from_id(id);
    session_store store(*state->zone);
    const insert_outcome outcome = store.record(*key, now, presented_binding_of(r, store));
    if (!outcome.stored) {
        return refuse(r, state, NGX_HTTP_SERVICE_UNAVAILABLE, "Service Unavailable: the session zone is full");
    }
    if (outcome.evictions_to_log > 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mcp_session zone \"%V\" is full: evicted %uz least recently used sessions",
                      &state->zone->name, outcome.evictions_to_log);
    }
    state->status = session_status::created;
    state->created_ms = state->previous_access_ms = now;
    state->issued = true;
    state->key = *key;
    state->id = pool_copy(r, id);
    return state->id.data == nullptr ? NGX_HTTP_INTERNAL_SERVER_ERROR : NGX_DECLINED;
}

// After the body of a sessionless POST was read (issue mode). Only an
// initialize (which gets nginx's session) and modern requests whose body
// agrees with their header reach the backend without a session: whatever
// else nginx cannot read is refused here, so no parser difference between
// nginx and the backend can make a session nginx does not know.
ngx_int_t decide_on_body(ngx_http_request_t* r, request_state* state)
{
    const loc_conf* lcf = conf_of(r);
    std::string prefix;
    const bool complete = collect_body(r, mcp_session::max_inspected_bytes, &prefix);  // reads no further
    const mcp_session::message_facts facts = mcp_session::inspect_message_body(prefix, complete);
    state->request_id = pool_copy(r, facts.id);
    state->method = pool_copy(r, facts.method);
    state->target = pool_copy(r, facts.target);
    if (!state->deciding) {
        return NGX_DECLINED;  // read for $mcp_method and friends only
    }
    // An initialize method seen in the prefix is enough, even when a later
    // duplicate key could change it: the session nginx makes then fails at
    // the backend (non-2xx drops it) or serves a stateless one, and no
    // backend id reaches the client either way.
    if (facts.initialize) {
        if (lcf->heal && complete && prefix.size() <= max_kept_initialize) {
            state->initialize_body = pool_copy(r, prefix);  // kept with the session once the backend accepts it
        }
        return issue_session(r, lcf, state);
    }
    if (!facts.decided) {
        return refuse(r, state, NGX_HTTP_BAD_REQUEST,
                      "Bad Request: a request without Mcp-Session-Id must be an initialize that nginx can read "
                      "(one JSON-RPC message, its method within the first " +
                          std::to_string(mcp_session::max_inspected_bytes / 1024) + " KB)");
    }
    if (!facts.json) {
        return refuse(r, state, NGX_HTTP_BAD_REQUEST, "Parse error: the body is not valid JSON-RPC");
    }
    if (state->modern && facts.meta_version && *facts.meta_version == to_view(state->protocol_version)) {
        state->passthrough = true;  // a sessionless revision: the backend's to answer
        return NGX_DECLINED;
    }
    return refuse(r, state, NGX_HTTP_BAD_REQUEST,
                  "Bad Request: Mcp-Session-Id header is required (initialize first)");
}

void on_access_body(ngx_http_request_t* r) noexcept
{
    request_state* state = state_of(r);
    ngx_int_t rc;
    try {
        rc = decide_on_body(r, state);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: reading the request failed: %s", e.what());
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (rc == NGX_DONE) {
        return;  // answered and finalized
    }
    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return;
    }
    // As nginx's mirror module does: keep the body for proxy_pass and
    // resume the phases; the access handler now answers DECLINED.
    state->access_result = NGX_DECLINED;
    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}

ngx_int_t read_body_first(ngx_http_request_t* r, request_state* state)
{
    state->access_result = NGX_DONE;
    const ngx_int_t rc = ngx_http_read_client_request_body(r, on_access_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }
    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}

// The three request headers the gate judges, found in one walk of the
// header list (it runs on every request of a session location).
struct gate_headers {
    header_match origin;
    header_match version;
    header_match session;
};

// ASCII case-insensitive; `name` is lower case and its length was
// compared. nginx's parsers (HTTP/1, 2 and 3) give every request header a
// lower-case copy of its name, so one memcmp does; a header another
// module added without one is compared folding case.
bool named(const ngx_table_elt_t& h, std::string_view name)
{
    if (h.lowcase_key != nullptr) {
        return std::memcmp(h.lowcase_key, name.data(), name.size()) == 0;
    }
    return mcp_session::equals_ignoring_case(to_view(h.key), name);
}

void count(header_match& match, ngx_table_elt_t& h)
{
    if (match.first == nullptr) {
        match.first = &h;
    }
    ++match.count;
}

gate_headers scan_gate_headers(ngx_list_t& headers)
{
    static constexpr std::string_view session = "mcp-session-id";
    static constexpr std::string_view origin = "origin";
    static constexpr std::string_view version = "mcp-protocol-version";
    static_assert(origin.size() != version.size() && origin.size() != session.size() &&
                  version.size() != session.size());  // the length picks the candidate
    gate_headers found;
    for (ngx_list_part_t* part = &headers.part; part != nullptr; part = part->next) {
        auto* fields = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; ++i) {
            ngx_table_elt_t& h = fields[i];
            if (h.hash == 0) {
                continue;  // removed by another module
            }
            if (h.key.len == session.size() && named(h, session)) {
                count(found.session, h);
            } else if (h.key.len == origin.size() && named(h, origin)) {
                count(found.origin, h);
            } else if (h.key.len == version.size() && named(h, version)) {
                count(found.version, h);
            }
        }
    }
    return found;
}

ngx_int_t first_pass(ngx_http_request_t* r, const loc_conf* lcf, request_state* state)
{
    const gate_headers headers = scan_gate_headers(r->headers_in.headers);
    // A repeated header is refused wherever it decides anything: nginx
    // judges the first, and the backend could read another.
    const header_match& origin = headers.origin;
    if (origin.count > 1) {
        return refuse(r, state, NGX_HTTP_BAD_REQUEST, "Bad Request: more than one Origin header");
    }
    if (origin.count > 0 && !mcp_session::origin_allowed(to_view(origin.first->value), lcf->policy->origins)) {
        return refuse(r, state, NGX_HTTP_FORBIDDEN, "Forbidden: Origin not allowed");
    }

    const header_match& version = headers.version;
    if (version.count > 1) {
        return refuse(r, state, NGX_HTTP_BAD_REQUEST, "Bad Request: more than one MCP-Protocol-Version header");
    }
    if (version.count == 0) {
        // Absent: the default revision, a session-era one, nothing to judge.
        state->protocol_version.data = reinterpret_cast<u_char*>(const_cast<char*>(mcp_session::default_version.data()));
        state->protocol_version.len = mcp_session::default_version.size();
        state->modern = false;
    } else {
        const auto verdict =
            mcp_session::classify_protocol_version(to_view(version.first->value), lcf->policy->versions);
        state->protocol_version = version.first->value;
        state->modern = verdict.era == mcp_session::protocol_era::modern;
        if (!state->modern && verdict.era != mcp_session::protocol_era::session) {
            return refuse_version(r, state, verdict);
        }
    }

    // The revision header is the client's to choose: whatever it says, a
    // request that names a session is validated and bound like any other.
    const header_match& header = headers.session;
    if (header.count > 1) {
        return refuse(r, state, NGX_HTTP_BAD_REQUEST, "Bad Request: more than one Mcp-Session-Id header");
    }
    if (header.count == 1) {
        return validate_session(r, lcf, state, header.first);
    }
    if (lcf->mode == mode_issue && r->method == NGX_HTTP_POST) {
        state->deciding = true;
        return read_body_first(r, state);  // an initialize, or modern traffic?
    }
    // Learn mode judges no body: a modern POST passes, and the header
    // filter still learns any session the backend makes for it.
    state->passthrough = state->modern && r->method == NGX_HTTP_POST;
    if (lcf->inspect_body && r->method == NGX_HTTP_POST) {
        return read_body_first(r, state);
    }
    return NGX_DECLINED;
}

}  // namespace

ngx_int_t session_handler(ngx_http_request_t* r) noexcept
{
    try {
        const loc_conf* lcf = conf_of(r);
        zone_conf* zone = zone_of(lcf);
        if (zone == nullptr || r != r->main) {
            return NGX_DECLINED;
        }
        // The handler reruns after the body is read and after internal
        // redirects (error_page, try_files, named locations): the session
        // was decided once, on what the client sent.
        if (request_state* state = state_of(r)) {
            if (state->resume_gate) {
                state->resume_gate = false;
                return first_pass(r, lcf, state);  // Redis answered the session's lookup
            }
            if (state->backend_stream != nullptr) {
                return NGX_DECLINED;  // nginx's own GET, redirected (X-Accel-Redirect): never a client stream
            }
            if (state->streamed && lcf->stream) {
                r->content_handler = stream_handler;
            }
            return state->access_result;
        }
        request_state* state = create_state(r, zone);
        if (state == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        state->issue_mode = lcf->mode == mode_issue;
        return first_pass(r, lcf, state);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: session check failed: %s", e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: session check failed");
    }
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

ngx_int_t start_id_generator() noexcept
{
    try {
        id_generator = std::make_unique<mcp_session::session_id_generator>();
        return NGX_OK;
    } catch (...) {
        return NGX_ERROR;
    }
}

}  // namespace mcp_ngx
