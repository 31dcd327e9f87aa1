// The only place nginx headers are included: they are C, so they go in
// one extern "C" block, first, before any C++ header.
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif
}

#include <cstdint>
#include <string_view>

namespace mcp_ngx {

inline std::string_view to_view(const ngx_str_t& s)
{
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

// nginx's cached wall clock in milliseconds: cheap, updated once per event
// loop turn, comparable between workers (each reads the same system clock).
inline std::int64_t now_ms()
{
    const ngx_time_t* tp = ngx_timeofday();
    return static_cast<std::int64_t>(tp->sec) * 1000 + static_cast<std::int64_t>(tp->msec);
}

}  // namespace mcp_ngx
