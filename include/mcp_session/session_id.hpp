// Session ids as they appear on the wire: generating nginx's own (UUIDv7)
// and reading the Mcp-Session-Id request header.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_session {

// Longest id the store tracks (bytes). The spec bounds only the alphabet;
// JWT-style ids run to a few KB, and nginx's default client header line
// (large_client_header_buffers 8k) cannot carry more than this anyway.
// Ids over 128 bytes are kept as a digest (see session_key).
inline constexpr std::size_t max_session_id_length = 8192;

// 16 bytes from a cryptographically secure source, drawn per call.
using random_bits = std::array<std::uint8_t, 16>;

// A UUIDv7 string (RFC 9562): 48-bit Unix-millisecond timestamp, version 7,
// variant 10, the remaining 74 bits taken from `entropy`.
std::string make_session_id_v7(std::int64_t unix_ms, const random_bits& entropy);

// Draws entropy from the operating system's CSPRNG. Construct one per worker
// process, after fork, so no two workers share generator state.
class session_id_generator {
public:
    session_id_generator();
    ~session_id_generator();
    session_id_generator(const session_id_generator&) = delete;
    session_id_generator& operator=(const session_id_generator&) = delete;

    std::string next(std::int64_t unix_ms);

private:
    struct impl;
    impl* impl_;
};

// The value of an Mcp-Session-Id header with optional whitespace trimmed.
// Empty or all-whitespace means "names no session" (answered as unknown,
// never 400 — one re-initialize path for clients).
std::optional<std::string_view> parse_session_header(std::string_view raw);

// True when `id` can be a stored session: 1..max_session_id_length bytes,
// each visible ASCII (0x21-0x7E) as the transport spec requires.
bool is_storable_session_id(std::string_view id);

}  // namespace mcp_session
