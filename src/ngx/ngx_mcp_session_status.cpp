// The status endpoint: a zone's gauges and counters as JSON or in the
// Prometheus text format. Copied under the zone lock, formatted outside it.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_cluster.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_store.hpp"
#include "ngx_mcp_session_traffic.hpp"
#include "ngx_mcp_session_zone.hpp"

#include "mcp_session/error_body.hpp"
#include "mcp_session/status.hpp"

#include <exception>

namespace mcp_ngx {
namespace {

bool wants_prometheus(ngx_http_request_t* r)
{
    ngx_str_t format;
    if (ngx_http_arg(r, reinterpret_cast<u_char*>(const_cast<char*>("format")), 6, &format) == NGX_OK) {
        return to_view(format) == "prometheus";
    }
    const header_match accept = find_header(r->headers_in.headers, "Accept");
    if (accept.count == 0) {
        return false;
    }
    const std::string_view value = to_view(accept.first->value);
    return value.find("text/plain") != std::string_view::npos && value.find("version=0.0.4") != std::string_view::npos;
}

ngx_int_t report(ngx_http_request_t* r)
{
    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return send_json(r, NGX_HTTP_NOT_ALLOWED, mcp_session::transport_error_body("Method Not Allowed: use GET"));
    }
    auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    auto& zone = *static_cast<zone_conf*>(lcf->status_zone->data);
    session_store store(zone);
    mcp_session::zone_status status = store.status();
    if (zone.redis != nullptr) {
        status.redis_up = shared_link_up(zone) ? 1 : 0;
    }
    if (wants_prometheus(r)) {
        std::string text = mcp_session::status_prometheus(status);
        if (zone.shared->traffic != nullptr) {
            text += mcp_session::traffic_prometheus(status.zone, read_traffic(*zone.shared->traffic));
        }
        return send_body(r, NGX_HTTP_OK, mcp_session::prometheus_content_type, text);
    }
    return send_json(r, NGX_HTTP_OK, mcp_session::status_json(status));
}

}  // namespace

ngx_int_t status_handler(ngx_http_request_t* r) noexcept
{
    try {
        return report(r);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "mcp_session: status failed: %s", e.what());
    }
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

}  // namespace mcp_ngx
