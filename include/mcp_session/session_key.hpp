// The form in which a session id is kept in shared memory and compared.
#pragma once

#include "mcp_session/session_id.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcp_session {

// How an id's bytes are kept. Packing keeps the common shapes small, so an
// idle session record stays in a 128-byte slab chunk: a canonical lowercase
// UUID (what nginx issues and most SDKs send) and any even-length lowercase
// hex id (uuid4().hex, $request_id) take half their length. Ids longer than
// max_verbatim_id_length are kept as their SHA-256 digest: a backend may
// issue JWT-sized ids, and only equality is ever asked of a stored id.
enum class id_form : std::uint8_t { verbatim = 0, uuid = 1, lower_hex = 2, digest = 3 };

inline constexpr std::size_t max_verbatim_id_length = 128;

class session_key {
public:
    static constexpr std::size_t packed_uuid_size = 16;
    static constexpr std::size_t digest_size = 32;
    // Longest stored form: a verbatim id (every packed form is shorter).
    static constexpr std::size_t max_stored_size = max_verbatim_id_length;

    // nullopt when `id` is not storable (see is_storable_session_id).
    static std::optional<session_key> from_id(std::string_view id);

    // Rebuilds a key from bytes previously taken from data()/size()/form().
    static session_key from_stored(const std::uint8_t* bytes, std::size_t size, id_form form);

    // True when `form` is a known form and `size` bytes are a size it can
    // have, and the bytes are what from_id would store (state files).
    static bool is_canonical(const std::uint8_t* bytes, std::size_t size, std::uint8_t form);

    const std::uint8_t* data() const { return bytes_.data(); }
    std::size_t size() const { return size_; }
    id_form form() const { return form_; }

    // Seeded so an id set chosen to collide in one zone does not collide
    // in another; the seed lives with the zone so every worker agrees.
    std::uint64_t hash(std::uint64_t seed) const;

    bool equals(const std::uint8_t* bytes, std::size_t size, id_form form) const;

    // The id as the client sent it; a digest has no way back and gives
    // nullopt.
    std::optional<std::string> to_id() const;

private:
    std::array<std::uint8_t, max_stored_size> bytes_{};
    std::uint8_t size_ = 0;
    id_form form_ = id_form::verbatim;
};

}  // namespace mcp_session
