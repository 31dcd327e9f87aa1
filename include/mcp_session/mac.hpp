// HMAC-SHA-256 (FIPS 180-4, RFC 2104): authenticates the state file with
// a key kept outside it, so a file nginx did not write is refused.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mcp_session {

using sha256_digest = std::array<std::uint8_t, 32>;

sha256_digest sha256(std::string_view bytes);

// Keys longer than the 64-byte block are hashed first, as RFC 2104 says.
sha256_digest hmac_sha256(std::string_view key, std::string_view bytes);

// Compares without an early exit, so timing does not tell how much matched.
bool same_digest(const std::uint8_t* a, const std::uint8_t* b, std::size_t size);

}  // namespace mcp_session
