// The publish endpoint: POST one JSON-RPC message for a session, named by
// nginx's id or (issue mode) by the backend's own; it joins the session's
// ring and reaches its stream in whichever worker holds it.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_cluster_node.hpp"
#include "ngx_mcp_session_cluster_streams.hpp"
#include "ngx_mcp_session_events.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_request.hpp"

#include "mcp_session/error_body.hpp"
#include "mcp_session/message.hpp"
#include "mcp_session/session_id.hpp"

#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_ngx {
namespace {

ngx_int_t refuse(ngx_http_request_t* r, ngx_uint_t status, std::string_view message)
{
    return send_json(r, status, mcp_session::transport_error_body(message));
}

ngx_int_t answer_unreachable(ngx_http_request_t* r)
{
    if (!add_retry_after_one_second(r)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    return refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE, store_unreachable_message);
}

// A publish waiting for Redis to number its event. Freed by whichever of
// the answer and the request's end comes second.
struct publish_ticket {
    ngx_http_request_t* request = nullptr;
    std::string session_id;  // for the 404 body
    bool answered = false;
    // Unknown to this node: nginx's id is asked first; the backend's own
    // (issue mode) next, with what to publish kept for it.
    zone_conf* zone = nullptr;
    bool may_be_backend_id = false;
    mcp_session::event_kind kind = mcp_session::event_kind::message;
    std::string payload;
};

void on_publish_request_gone(void* data) noexcept
{
    auto* ticket = static_cast<publish_ticket*>(data);
    if (ticket->answered) {
        delete ticket;
    } else {
        ticket->request = nullptr;
    }
}

void on_numbered(publish_ticket* ticket, std::int64_t id) noexcept;

// Issue mode: the id the publisher named may be the backend's.
void publish_by_backend_id(publish_ticket* ticket) noexcept
{
    ticket->may_be_backend_id = false;  // asked once
    try {
        find_by_backend_id(*ticket->zone, ticket->session_id, [ticket](std::optional<mcp_session::session_key> key) {
            if (!key) {
                on_numbered(ticket, append_unknown);
                return;
            }
            mcp_session::shared_event event;
            event.kind = ticket->kind;
            event.payload = ticket->payload;
            append_shared_event(*ticket->zone, *key, event, false,
                                [ticket](std::int64_t id) { on_numbered(ticket, id); });
        });
    } catch (...) {
        on_numbered(ticket, append_unavailable);
    }
}

void on_numbered(publish_ticket* ticket, std::int64_t id) noexcept
{
    ngx_http_request_t* r = ticket->request;
    if (r == nullptr) {
        delete ticket;
        return;
    }
    if (id == append_unknown && ticket->may_be_backend_id) {
        publish_by_backend_id(ticket);
        return;
    }
    ticket->answered = true;  // the request's cleanup frees it
    ngx_int_t rc;
    try {
        if (id > 0) {
            rc = send_json(r, NGX_HTTP_ACCEPTED, "{\"id\":" + std::to_string(id) + "}");
        } else if (id == append_unavailable) {
            rc = answer_unreachable(r);
        } else {
            rc = send_json(r, NGX_HTTP_NOT_FOUND, mcp_session::session_not_found_body(ticket->session_id));
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: publish failed: %s", e.what());
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ngx_connection_t* c = r->connection;
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}

// redis=: the cluster numbers the event (so every node gives it the same
// id) and carries it to the session's stream on whichever node holds it.
// The request waits for the number; without Redis it is 503, for the
// publisher to retry: an event numbered here alone would collide.
ngx_int_t publish_across_nodes(ngx_http_request_t* r, request_state* state, std::string_view payload,
                               std::int64_t now)
{
    mcp_session::session_key key = state->key;
    const publish_result local = event_store(*state->zone).find_publish_target(key, to_view(state->id), now);
    if (local == publish_result::expired) {
        return send_json(r, NGX_HTTP_NOT_FOUND, mcp_session::session_not_found_body(to_view(state->id)));
    }
    if (!state->zone->cluster->commands.ready()) {
        return answer_unreachable(r);
    }
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(r->pool, 0);
    if (cleanup == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    auto* ticket = new publish_ticket;
    ticket->request = r;
    ticket->session_id.assign(to_view(state->id));
    cleanup->handler = on_publish_request_gone;
    cleanup->data = ticket;
    ticket->zone = state->zone;
    if (local == publish_result::unknown) {
        ticket->may_be_backend_id = true;
        ticket->kind = state->publish_kind;
        ticket->payload.assign(payload);
    }
    mcp_session::shared_event event;
    event.kind = state->publish_kind;
    event.payload = payload;
    append_shared_event(*state->zone, key, event, local == publish_result::published,
                        [ticket](std::int64_t id) { on_numbered(ticket, id); });
    return NGX_DONE;  // the body's reference keeps the request until on_numbered
}

ngx_int_t publish_body(ngx_http_request_t* r)
{
    request_state* state = state_of(r);
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    std::string body;
    if (!collect_body(r, lcf->event_max_size, &body)) {
        return refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "Payload Too Large: event exceeds mcp_session_event_max_size");
    }
    const mcp_session::published_message message = mcp_session::prepare_published_message(body);
    if (message.refusal != mcp_session::publish_refusal::none) {
        return refuse(r, NGX_HTTP_BAD_REQUEST, mcp_session::publish_refusal_message(message.refusal));
    }

    const std::int64_t now = now_ms();
    if (shares_events(*state->zone)) {
        return publish_across_nodes(r, state, message.payload, now);
    }
    // The header may carry nginx's id or, in issue mode, the backend's own.
    const publish_outcome outcome =
        event_store(*state->zone).publish(state->key, state->publish_kind, message.payload, now, to_view(state->id));
    switch (outcome.result) {
    case publish_result::published:
        return send_json(r, NGX_HTTP_ACCEPTED, "{\"id\":" + std::to_string(outcome.id) + "}");
    case publish_result::no_memory:
        return refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE, "Service Unavailable: the session zone has no room for the event");
    case publish_result::unknown:
    case publish_result::expired:
        break;
    }
    return send_json(r, NGX_HTTP_NOT_FOUND, mcp_session::session_not_found_body(to_view(state->id)));
}

void on_body_read(ngx_http_request_t* r) noexcept
{
    ngx_int_t rc;
    try {
        rc = publish_body(r);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: publish failed: %s", e.what());
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (rc == NGX_DONE) {
        r->write_event_handler = ngx_http_request_empty_handler;
        return;  // answered when Redis has numbered the event
    }
    ngx_http_finalize_request(r, rc);
}

ngx_int_t publish(ngx_http_request_t* r)
{
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    if (r->method != NGX_HTTP_POST) {
        if (!add_response_header(r, ngx_string("Allow"), ngx_string("POST"))) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return refuse(r, NGX_HTTP_NOT_ALLOWED, "Method Not Allowed: publish with POST");
    }

    auto* zone = static_cast<zone_conf*>(lcf->publish_zone->data);
    request_state* state = create_state(r, zone);
    if (state == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    const header_match header = find_header(r->headers_in.headers, "Mcp-Session-Id");
    if (header.count != 1) {
        return refuse(r, NGX_HTTP_BAD_REQUEST, "Bad Request: name the session in exactly one Mcp-Session-Id header");
    }
    const auto presented = mcp_session::parse_session_header(to_view(header.first->value));
    if (presented) {
        state->id.data = const_cast<u_char*>(reinterpret_cast<const u_char*>(presented->data()));
        state->id.len = presented->size();
    }
    const auto key = presented ? mcp_session::session_key::from_id(*presented) : std::nullopt;
    if (!key) {
        return send_json(r, NGX_HTTP_NOT_FOUND, mcp_session::session_not_found_body(to_view(state->id)));
    }
    state->key = *key;

    state->publish_kind = mcp_session::event_kind::message;
    ngx_str_t kind;
    if (ngx_http_arg(r, reinterpret_cast<u_char*>(const_cast<char*>("event")), 5, &kind) == NGX_OK) {
        const auto parsed = mcp_session::parse_published_kind(to_view(kind));
        if (!parsed) {
            return refuse(r, NGX_HTTP_BAD_REQUEST, "Bad Request: event must be \"message\" or \"progress\"");
        }
        state->publish_kind = *parsed;
    }
    if (r->headers_in.content_length_n > static_cast<off_t>(lcf->event_max_size)) {
        return refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                      "Payload Too Large: event exceeds mcp_session_event_max_size");
    }

    const ngx_int_t rc = ngx_http_read_client_request_body(r, on_body_read);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }
    return NGX_DONE;
}

}  // namespace

ngx_int_t publish_handler(ngx_http_request_t* r) noexcept
{
    try {
        return publish(r);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: publish failed: %s", e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: publish failed");
    }
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

}  // namespace mcp_ngx
