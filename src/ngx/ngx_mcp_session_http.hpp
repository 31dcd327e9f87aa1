// Small HTTP helpers: finding headers and answering with a JSON body.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include <string_view>

namespace mcp_ngx {

struct header_match {
    ngx_table_elt_t* first = nullptr;
    ngx_uint_t count = 0;
};

// Case-insensitive; counts repeats so callers can refuse ambiguous input.
header_match find_header(ngx_list_t& headers, std::string_view name);

// Sends a complete application/json response; returns what the output
// filter returned, ready for ngx_http_finalize_request.
ngx_int_t send_json(ngx_http_request_t* r, ngx_uint_t status, std::string_view body);

}  // namespace mcp_ngx
