// The form in which a session id is kept in shared memory and compared.
#pragma once

#include "mcp_session/session_id.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_session {

// A canonical lowercase UUID (what nginx issues and most SDKs send) packs
// into 16 bytes, so an idle session record stays in a 128-byte slab chunk;
// any other visible-ASCII id is kept verbatim. Equal ids give equal keys.
class session_key {
public:
    static constexpr std::size_t packed_uuid_size = 16;

    // nullopt when `id` is not storable (see is_storable_session_id).
    static std::optional<session_key> from_id(std::string_view id);

    // Rebuilds a key from bytes previously taken from data()/size().
    static session_key from_stored(const std::uint8_t* bytes, std::size_t size, bool packed_uuid);

    const std::uint8_t* data() const { return bytes_.data(); }
    std::size_t size() const { return size_; }
    bool packed_uuid() const { return packed_uuid_; }

    // Seeded so an id set chosen to collide in one zone does not collide
    // in another; the seed lives with the zone so every worker agrees.
    std::uint64_t hash(std::uint64_t seed) const;

    bool equals(const std::uint8_t* bytes, std::size_t size, bool packed_uuid) const;

    std::string to_id() const;

private:
    std::array<std::uint8_t, max_session_id_length> bytes_{};
    std::uint8_t size_ = 0;
    bool packed_uuid_ = false;
};

}  // namespace mcp_session
