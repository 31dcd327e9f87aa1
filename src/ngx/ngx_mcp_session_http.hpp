// Small HTTP helpers: finding headers and answering with a JSON body.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include "mcp_session/text.hpp"

#include <string>
#include <string_view>

namespace mcp_ngx {

struct header_match {
    ngx_table_elt_t* first = nullptr;
    ngx_uint_t count = 0;
};

// Calls visit(ngx_table_elt_t&) for every live header of that name
// (case-insensitive; hash 0 marks one another module removed).
template <typename Visit>
void for_each_header(ngx_list_t& headers, std::string_view name, Visit visit)
{
    for (ngx_list_part_t* part = &headers.part; part != nullptr; part = part->next) {
        auto* fields = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; ++i) {
            ngx_table_elt_t& h = fields[i];
            if (h.hash != 0 && h.key.len == name.size() &&
                mcp_session::equals_ignoring_case(to_view(h.key), name)) {
                visit(h);
            }
        }
    }
}

// Case-insensitive; counts repeats so callers can refuse ambiguous input.
header_match find_header(ngx_list_t& headers, std::string_view name);

// The request body as one string, from memory buffers or nginx's temp
// file, read no further than `limit` bytes: false when it is larger (the
// string then holds its first `limit` bytes).
// Marks every buffer of `in` consumed (memory and file): an answer that
// goes nowhere, so the upstream can reuse its buffers.
void consume_chain(ngx_chain_t* in);

bool collect_body(ngx_http_request_t* r, size_t limit, std::string* body);

// A copy in the request pool (for values that must outlive a std::string),
// NUL-terminated; data is null when out of memory.
ngx_str_t pool_copy(ngx_http_request_t* r, std::string_view text);
ngx_str_t pool_copy(ngx_pool_t* pool, std::string_view text);

// Appends a response header; `key` and `value` must outlive the request
// (literals, or copies in its pool). False when out of memory.
bool add_response_header(ngx_http_request_t* r, ngx_str_t key, ngx_str_t value);

// redis=: a 503 because the session store cannot be reached now carries
// `Retry-After: 1` and this message.
bool add_retry_after_one_second(ngx_http_request_t* r);
inline constexpr std::string_view store_unreachable_message =
    "Service Unavailable: the session store cannot be reached; retry shortly";

// The response's Content-Type is `type` (case-insensitive), alone or
// followed by parameters (`application/json; charset=utf-8`).
bool has_content_type(const ngx_http_request_t* r, std::string_view type);

// The answer came from the backend (not nginx's own page, a `return`, or
// an error_page target nginx served itself).
inline bool answered_by_backend(const ngx_http_request_t* r)
{
    return r->upstream != nullptr && r->upstream->state != nullptr;
}

// Sends a complete response with this body; returns what the output
// filter returned, ready for ngx_http_finalize_request. `content_type`
// must be static (a literal): nginx keeps pointing at it.
ngx_int_t send_body(ngx_http_request_t* r, ngx_uint_t status, std::string_view content_type, std::string_view body);

// send_body with application/json.
ngx_int_t send_json(ngx_http_request_t* r, ngx_uint_t status, std::string_view body);

}  // namespace mcp_ngx
