#include "ngx_mcp_session_policy.hpp"

#include <algorithm>
#include <cctype>
#include <new>

namespace mcp_ngx {
namespace {

std::string lowercase(const ngx_str_t& s)
{
    std::string out(reinterpret_cast<const char*>(s.data), s.len);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

void destroy_policy(void* data) noexcept { static_cast<location_policy*>(data)->~location_policy(); }

// The server block's literal names (no wildcards or regexes): the hosts a
// browser page of this site may legitimately come from.
void add_server_names(ngx_conf_t* cf, mcp_session::origin_policy& origins)
{
    auto* cscf = static_cast<ngx_http_core_srv_conf_t*>(ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module));
    if (cscf == nullptr) {
        return;
    }
    auto* names = static_cast<ngx_http_server_name_t*>(cscf->server_names.elts);
    for (ngx_uint_t i = 0; i < cscf->server_names.nelts; ++i) {
        const ngx_str_t& name = names[i].name;
#if (NGX_PCRE)
        if (names[i].regex != nullptr) {
            continue;
        }
#endif
        if (name.len == 0 || ngx_strlchr(name.data, name.data + name.len, '*') != nullptr || name.data[0] == '.') {
            continue;
        }
        origins.hosts.push_back(lowercase(name));
    }
}

}  // namespace

location_policy* build_location_policy(ngx_conf_t* cf, const loc_conf* lcf)
{
    void* memory = ngx_palloc(cf->pool, sizeof(location_policy));
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(cf->pool, 0);
    if (memory == nullptr || cleanup == nullptr) {
        return nullptr;
    }
    auto* policy = new (memory) location_policy();
    cleanup->handler = destroy_policy;
    cleanup->data = policy;

    if (lcf->allowed_origins != nullptr) {
        auto* origins = static_cast<ngx_str_t*>(lcf->allowed_origins->elts);
        for (ngx_uint_t i = 0; i < lcf->allowed_origins->nelts; ++i) {
            const std::string origin = lowercase(origins[i]);
            if (origin == "any") {
                policy->origins.any = true;
            } else {
                policy->origins.origins.push_back(origin);
            }
        }
    } else {
        add_server_names(cf, policy->origins);
    }
    if (lcf->protocol_versions != nullptr) {
        auto* versions = static_cast<ngx_str_t*>(lcf->protocol_versions->elts);
        for (ngx_uint_t i = 0; i < lcf->protocol_versions->nelts; ++i) {
            policy->versions.emplace_back(reinterpret_cast<const char*>(versions[i].data), versions[i].len);
        }
    }
    return policy;
}

}  // namespace mcp_ngx
