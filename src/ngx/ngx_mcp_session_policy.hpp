// A location's protocol rules (Origin allow-list, accepted revisions),
// turned into core types once at configuration time.
#pragma once

#include "ngx_mcp_session_conf.hpp"

#include "mcp_session/protocol.hpp"

#include <string>
#include <vector>

namespace mcp_ngx {

struct location_policy {
    mcp_session::origin_policy origins;
    std::vector<std::string> versions;  // empty: every session-era revision
};

// Lives as long as the configuration (a cleanup on cf->pool destroys it).
location_policy* build_location_policy(ngx_conf_t* cf, const loc_conf* lcf);

}  // namespace mcp_ngx
