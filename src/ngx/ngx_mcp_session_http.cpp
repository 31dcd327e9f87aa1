#include "ngx_mcp_session_http.hpp"

#include <algorithm>
#include <stdexcept>

namespace mcp_ngx {

header_match find_header(ngx_list_t& headers, std::string_view name)
{
    header_match match;
    for_each_header(headers, name, [&](ngx_table_elt_t& h) {
        if (match.first == nullptr) {
            match.first = &h;
        }
        ++match.count;
    });
    return match;
}

bool collect_body(ngx_http_request_t* r, size_t limit, std::string* prefix)
{
    if (r->request_body == nullptr) {
        return true;
    }
    for (ngx_chain_t* cl = r->request_body->bufs; cl != nullptr; cl = cl->next) {
        ngx_buf_t* b = cl->buf;
        const size_t size = b->in_file ? static_cast<size_t>(b->file_last - b->file_pos)
                                       : static_cast<size_t>(b->last - b->pos);
        const size_t wanted = std::min(size, limit - prefix->size());
        if (!b->in_file) {
            prefix->append(reinterpret_cast<const char*>(b->pos), wanted);
        } else if (wanted > 0) {
            const size_t start = prefix->size();
            prefix->resize(start + wanted);
            const ssize_t n =
                ngx_read_file(b->file, reinterpret_cast<u_char*>(&(*prefix)[start]), wanted, b->file_pos);
            if (n != static_cast<ssize_t>(wanted)) {
                throw std::runtime_error("reading the request body from its temp file");
            }
        }
        if (wanted < size) {
            return false;  // more of the body follows
        }
    }
    return true;
}

void consume_chain(ngx_chain_t* in)
{
    for (ngx_chain_t* cl = in; cl != nullptr; cl = cl->next) {
        ngx_buf_t* b = cl->buf;
        if (ngx_buf_in_memory(b)) {
            b->pos = b->last;
        }
        if (b->in_file) {
            b->file_pos = b->file_last;
        }
    }
}

ngx_str_t pool_copy(ngx_pool_t* pool, std::string_view text)
{
    ngx_str_t copy;
    copy.len = 0;
    copy.data = static_cast<u_char*>(ngx_pnalloc(pool, text.size() + 1));
    if (copy.data == nullptr) {
        return copy;
    }
    if (!text.empty()) {  // an empty view's data() may be null, which memcpy must not get
        ngx_memcpy(copy.data, text.data(), text.size());
        copy.len = text.size();
    }
    copy.data[copy.len] = '\0';
    return copy;
}

ngx_str_t pool_copy(ngx_http_request_t* r, std::string_view text) { return pool_copy(r->pool, text); }

bool has_content_type(const ngx_http_request_t* r, std::string_view type)
{
    const ngx_str_t& value = r->headers_out.content_type;
    return value.len >= type.size() &&
           ngx_strncasecmp(value.data, reinterpret_cast<u_char*>(const_cast<char*>(type.data())), type.size()) == 0 &&
           (value.len == type.size() || value.data[type.size()] == ';' || value.data[type.size()] == ' ');
}

bool add_response_header(ngx_http_request_t* r, ngx_str_t key, ngx_str_t value)
{
    auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) {
        return false;
    }
    h->hash = 1;
    h->key = key;
    h->value = value;
    return true;
}

bool add_retry_after_one_second(ngx_http_request_t* r)
{
    static ngx_str_t retry_after = ngx_string("Retry-After");
    static ngx_str_t one_second = ngx_string("1");
    return add_response_header(r, retry_after, one_second);
}

ngx_int_t send_body(ngx_http_request_t* r, ngx_uint_t status, std::string_view content_type, std::string_view body)
{
    // Read and drop any body so the connection stays usable (keep-alive).
    const ngx_int_t discarded = ngx_http_discard_request_body(r);
    if (discarded != NGX_OK) {
        return discarded;
    }

    auto* data = static_cast<u_char*>(ngx_pnalloc(r->pool, body.size()));
    auto* b = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
    if (data == nullptr || b == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ngx_memcpy(data, body.data(), body.size());
    b->pos = data;
    b->last = data + body.size();
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());
    r->headers_out.content_type.data = reinterpret_cast<u_char*>(const_cast<char*>(content_type.data()));
    r->headers_out.content_type.len = content_type.size();
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = nullptr;

    const ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }
    ngx_chain_t out;
    out.buf = b;
    out.next = nullptr;
    return ngx_http_output_filter(r, &out);
}

ngx_int_t send_json(ngx_http_request_t* r, ngx_uint_t status, std::string_view body)
{
    return send_body(r, status, "application/json", body);
}

}  // namespace mcp_ngx
