// $mcp_session_id and $mcp_session_status, for logs, maps and headers.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_request.hpp"

#include <algorithm>

namespace mcp_ngx {
namespace {

void set_value(ngx_http_variable_value_t* v, const u_char* data, size_t len)
{
    v->data = const_cast<u_char*>(data);
    v->len = static_cast<unsigned>(len);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
}

// Only requests in a location with mcp_session have a state.
ngx_int_t session_id_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept
{
    request_state* state = state_of(r);
    if (state == nullptr || state->id.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }
    set_value(v, state->id.data, state->id.len);
    return NGX_OK;
}

ngx_int_t session_status_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept
{
    request_state* state = state_of(r);
    if (state == nullptr) {
        v->not_found = 1;
        return NGX_OK;
    }
    const std::string_view name = status_name(state->status);
    set_value(v, reinterpret_cast<const u_char*>(name.data()), name.size());
    return NGX_OK;
}

ngx_int_t protocol_version_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept
{
    request_state* state = state_of(r);
    if (state == nullptr || state->protocol_version.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }
    set_value(v, state->protocol_version.data, state->protocol_version.len);
    return NGX_OK;
}

// A string of the request's state: what the body inspection found (already
// capped and cleaned by mcp_session::log_label) or the pinned upstream
// server (an address nginx wrote); `offset` selects the request_state member.
ngx_int_t body_label_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t offset) noexcept
{
    request_state* state = state_of(r);
    const ngx_str_t* text =
        state == nullptr ? nullptr : reinterpret_cast<const ngx_str_t*>(reinterpret_cast<const char*>(state) + offset);
    if (text == nullptr || text->len == 0 || (text->len == 4 && ngx_strncmp(text->data, "null", 4) == 0)) {
        v->not_found = 1;  // no body read, or nothing there
        return NGX_OK;
    }
    set_value(v, text->data, text->len);
    return NGX_OK;
}

// Whole seconds, for log_format; only once the request named or made a session.
ngx_int_t seconds_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t data) noexcept
{
    request_state* state = state_of(r);
    if (state == nullptr || state->created_ms == 0 ||
        (state->status != session_status::valid && state->status != session_status::created)) {
        v->not_found = 1;
        return NGX_OK;
    }
    const mcp_session::unix_ms since = data == 0 ? state->created_ms : state->previous_access_ms;
    const mcp_session::unix_ms elapsed = std::max<mcp_session::unix_ms>(0, now_ms() - since) / 1000;
    auto* text = static_cast<u_char*>(ngx_pnalloc(r->pool, NGX_INT64_LEN));
    if (text == nullptr) {
        return NGX_ERROR;
    }
    set_value(v, text, static_cast<size_t>(ngx_sprintf(text, "%L", static_cast<int64_t>(elapsed)) - text));
    return NGX_OK;
}

ngx_int_t age_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept
{
    return seconds_variable(r, v, 0);
}

ngx_int_t idle_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept
{
    return seconds_variable(r, v, 1);
}

struct variable_spec {
    const char* name;
    ngx_http_get_variable_pt get;
    uintptr_t data;
};

// The status changes during the request (valid -> new), so neither is cached.
constexpr variable_spec variables[] = {
    {"mcp_session_id", session_id_variable, 0},
    {"mcp_session_status", session_status_variable, 0},
    {"mcp_protocol_version", protocol_version_variable, 0},
    {"mcp_session_age", age_variable, 0},
    {"mcp_session_idle", idle_variable, 0},
    {"mcp_method", body_label_variable, offsetof(request_state, method)},
    {"mcp_tool", body_label_variable, offsetof(request_state, target)},
    {"mcp_rpc_id", body_label_variable, offsetof(request_state, request_id)},
    {"mcp_session_upstream", body_label_variable, offsetof(request_state, pinned_server)},
};

}  // namespace

ngx_int_t add_variables(ngx_conf_t* cf) noexcept
{
    for (const variable_spec& spec : variables) {
        ngx_str_t name;
        name.data = reinterpret_cast<u_char*>(const_cast<char*>(spec.name));
        name.len = ngx_strlen(spec.name);
        ngx_http_variable_t* var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE);
        if (var == nullptr) {
            return NGX_ERROR;
        }
        var->get_handler = spec.get;
        var->data = spec.data;
    }
    return NGX_OK;
}

}  // namespace mcp_ngx
