#include "ngx_mcp_session_request.hpp"

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

request_state* create_state(ngx_http_request_t* r, zone_conf* zone)
{
    void* memory = ngx_palloc(r->pool, sizeof(request_state));
    if (memory == nullptr) {
        return nullptr;
    }
    auto* state = new (memory) request_state{};
    state->zone = zone;
    state->status = session_status::none;
    ngx_http_set_ctx(r, state, ngx_mcp_session_module);
    return state;
}

}  // namespace mcp_ngx
