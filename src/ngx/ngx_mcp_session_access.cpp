// Access phase: a request naming a session must name a live one.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_store.hpp"

#include "mcp_session/error_body.hpp"
#include "mcp_session/event.hpp"
#include "mcp_session/session_id.hpp"

#include <exception>

namespace mcp_ngx {
namespace {

constexpr std::string_view session_header = "Mcp-Session-Id";

// nginx answered: stop the phases here and finish the request once.
ngx_int_t answer(ngx_http_request_t* r, request_state* state, ngx_uint_t status, std::string_view body)
{
    state->answered_here = true;
    ngx_http_finalize_request(r, send_json(r, status, body));
    return NGX_DONE;
}

ngx_int_t reject_session(ngx_http_request_t* r, request_state* state, session_status status)
{
    state->status = status;
    return answer(r, state, NGX_HTTP_NOT_FOUND, mcp_session::session_not_found_body(to_view(state->id)));
}

bool accepts_event_stream(ngx_http_request_t* r)
{
    static const char wanted[] = "text/event-stream";
    for (ngx_list_part_t* part = &r->headers_in.headers.part; part != nullptr; part = part->next) {
        auto* fields = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; ++i) {
            const ngx_table_elt_t& h = fields[i];
            if (h.hash != 0 && h.key.len == 6 && ngx_strncasecmp(h.key.data, (u_char*)"Accept", 6) == 0 &&
                ngx_strlcasestrn(h.value.data, h.value.data + h.value.len, (u_char*)wanted, sizeof(wanted) - 2)) {
                return true;
            }
        }
    }
    return false;
}

// With mcp_session_stream on, a session's GET stream is nginx's to serve
// (from the shared ring), not the backend's.
ngx_int_t route_stream(ngx_http_request_t* r, request_state* state)
{
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    if (!lcf->stream || r->method != NGX_HTTP_GET) {
        return NGX_DECLINED;
    }
    if (!accepts_event_stream(r)) {
        return answer(r, state, 406,  // Not Acceptable (nginx has no constant for it)
                      mcp_session::transport_error_body("Not Acceptable: the client must accept text/event-stream"));
    }
    const header_match last = find_header(r->headers_in.headers, "Last-Event-ID");
    if (last.count > 1) {
        return answer(r, state, NGX_HTTP_BAD_REQUEST,
                      mcp_session::transport_error_body("Bad Request: more than one Last-Event-ID header"));
    }
    if (last.count == 1) {
        const auto cursor = mcp_session::parse_last_event_id(to_view(last.first->value));
        if (!cursor) {
            return answer(r, state, NGX_HTTP_BAD_REQUEST,
                          mcp_session::transport_error_body(
                              "Bad Request: Last-Event-ID must be a decimal event id of this session's stream"));
        }
        state->last_event_id = *cursor;
    }
    r->content_handler = stream_handler;  // instead of the location's proxy_pass
    return NGX_DECLINED;
}

ngx_int_t validate(ngx_http_request_t* r, zone_conf* zone)
{
    request_state* state = create_state(r, zone);
    if (state == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    const header_match header = find_header(r->headers_in.headers, session_header);
    if (header.count == 0) {
        return NGX_DECLINED;  // maybe initialize: the header filter learns the id
    }
    if (header.count > 1) {
        // nginx and the backend could each pick a different one.
        return answer(r, state, NGX_HTTP_BAD_REQUEST,
                      mcp_session::transport_error_body("Bad Request: more than one Mcp-Session-Id header"));
    }

    const auto presented = mcp_session::parse_session_header(to_view(header.first->value));
    if (!presented) {
        return reject_session(r, state, session_status::unknown);
    }
    state->id.data = const_cast<u_char*>(reinterpret_cast<const u_char*>(presented->data()));
    state->id.len = presented->size();

    const auto key = mcp_session::session_key::from_id(*presented);
    if (!key) {
        return reject_session(r, state, session_status::unknown);  // could never have been stored
    }

    session_store store(*zone);
    switch (store.validate(*key, now_ms())) {
    case lookup_result::valid:
        state->status = session_status::valid;
        state->key = *key;
        return route_stream(r, state);
    case lookup_result::expired:
        return reject_session(r, state, session_status::expired);
    case lookup_result::unknown:
        break;
    }
    return reject_session(r, state, session_status::unknown);
}

}  // namespace

ngx_int_t access_handler(ngx_http_request_t* r) noexcept
{
    try {
        auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
        zone_conf* zone = zone_of(lcf);
        // Once per request: access handlers rerun after some redirects.
        if (zone == nullptr || r != r->main || state_of(r) != nullptr) {
            return NGX_DECLINED;
        }
        return validate(r, zone);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: access check failed: %s", e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: access check failed");
    }
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

}  // namespace mcp_ngx
