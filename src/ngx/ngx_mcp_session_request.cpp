#include "ngx_mcp_session_request.hpp"

#include "ngx_mcp_session_store.hpp"

#include "mcp_session/message.hpp"

#include <new>

namespace mcp_ngx {

std::string_view status_name(session_status status)
{
    switch (status) {
    case session_status::none:
        return "none";
    case session_status::created:
        return "new";
    case session_status::valid:
        return "valid";
    case session_status::unknown:
        return "unknown";
    case session_status::expired:
        return "expired";
    }
    return "none";
}

presented_binding presented_binding_of(ngx_http_request_t* r, session_store& store)
{
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    presented_binding binding;
    if (lcf->principal == nullptr && lcf->tenant == nullptr) {
        return binding;
    }
    const zone_conf* zone = zone_of(lcf);
    std::uint64_t cluster_key = 0;
    binding.cluster_key_known = zone != nullptr && zone->redis != nullptr && store.cluster_binding_key(&cluster_key);
    ngx_str_t value;
    if (lcf->principal != nullptr && ngx_http_complex_value(r, lcf->principal, &value) == NGX_OK) {
        binding.has_principal = true;
        binding.principal = mcp_session::binding_digest(to_view(value), store.binding_key());
        if (binding.cluster_key_known) {
            binding.cluster_principal = mcp_session::binding_digest(to_view(value), cluster_key);
        }
    }
    // A different key for tenants: equal strings in the two roles never match.
    if (lcf->tenant != nullptr && ngx_http_complex_value(r, lcf->tenant, &value) == NGX_OK) {
        binding.has_tenant = true;
        binding.tenant = mcp_session::binding_digest(to_view(value), ~store.binding_key());
        if (binding.cluster_key_known) {
            binding.cluster_tenant = mcp_session::binding_digest(to_view(value), ~cluster_key);
        }
    }
    return binding;
}

namespace {

// Marks the pool cleanup entry that holds a request's state; never runs
// anything (the state is trivially destructible).
void state_marker(void*) noexcept {}

}  // namespace

request_state* state_of(ngx_http_request_t* r)
{
    auto* state = static_cast<request_state*>(ngx_http_get_module_ctx(r, ngx_mcp_session_module));
    if (state != nullptr || !r->internal || r != r->main) {
        return state;
    }
    for (ngx_pool_cleanup_t* c = r->pool->cleanup; c != nullptr; c = c->next) {
        if (c->handler == state_marker) {
            state = static_cast<request_state*>(c->data);
            ngx_http_set_ctx(r, state, ngx_mcp_session_module);
            return state;
        }
    }
    return nullptr;
}

request_state* create_state(ngx_http_request_t* r, zone_conf* zone)
{
    ngx_pool_cleanup_t* marker = ngx_pool_cleanup_add(r->pool, 0);
    void* memory = ngx_palloc(r->pool, sizeof(request_state));
    if (marker == nullptr || memory == nullptr) {
        return nullptr;
    }
    auto* state = new (memory) request_state{};
    marker->handler = state_marker;
    marker->data = state;
    state->zone = zone;
    state->status = session_status::none;
    state->access_result = NGX_DECLINED;
    ngx_str_set(&state->request_id, "null");
    ngx_http_set_ctx(r, state, ngx_mcp_session_module);
    return state;
}

}  // namespace mcp_ngx
