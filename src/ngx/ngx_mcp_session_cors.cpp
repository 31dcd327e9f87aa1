// CORS on the module's own answers. A browser client (the MCP Inspector in
// direct mode, a web app) can read a cross-origin answer only when it
// carries Access-Control-Allow-Origin; without it nginx's 404 (the signal
// to re-initialize), 400, 406 or stream 200 reach the page as a network
// TypeError. Proxied answers keep the backend's own CORS headers: adding
// ours there would duplicate them, which browsers reject. Other answers
// nginx makes (`return`, an access module's 401) are the operator's, who
// may set CORS on them with add_header: this filter runs before
// add_header's, so it could not see those and would duplicate them.
#include "ngx_mcp_session_cors.hpp"

#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_policy.hpp"
#include "ngx_mcp_session_request.hpp"

#include "mcp_session/protocol.hpp"

#include <new>

namespace mcp_ngx {
namespace {

void add_header(ngx_http_request_t* r, ngx_str_t key, ngx_str_t value)
{
    if (!add_response_header(r, key, value)) {
        throw std::bad_alloc();
    }
}

}  // namespace

void add_cors_to_own_answer(ngx_http_request_t* r, const request_state* state)
{
    if (state == nullptr || !(state->answered_here || state->streamed) || r != r->main || answered_by_backend(r)) {
        return;
    }
    add_cors_to_replaced_answer(r);
}

void add_cors_to_replaced_answer(ngx_http_request_t* r)
{
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    if (lcf == nullptr || lcf->zone == nullptr || !lcf->cors) {
        return;
    }
    const header_match origin = find_header(r->headers_in.headers, "Origin");
    // One Origin the location allows (the gate answered 403 or 400 otherwise).
    if (origin.count != 1 || lcf->policy == nullptr ||
        !mcp_session::origin_allowed(to_view(origin.first->value), lcf->policy->origins)) {
        return;
    }
    if (find_header(r->headers_out.headers, "Access-Control-Allow-Origin").count > 0) {
        return;  // another module set it
    }
    add_header(r, ngx_string("Access-Control-Allow-Origin"), origin.first->value);
    add_header(r, ngx_string("Vary"), ngx_string("Origin"));
    add_header(r, ngx_string("Access-Control-Expose-Headers"), ngx_string("Mcp-Session-Id, MCP-Protocol-Version"));
}

}  // namespace mcp_ngx
