#include "mcp_session/session_key.hpp"

#include <algorithm>
#include <cstring>

namespace mcp_session {
namespace {

constexpr std::size_t uuid_text_size = 36;

bool is_dash_position(std::size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

int lower_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

// Only the exact canonical spelling packs, so unpacking gives back the
// same bytes the client sent (an uppercase UUID stays verbatim).
bool pack_canonical_uuid(std::string_view id, std::uint8_t* out)
{
    if (id.size() != uuid_text_size) {
        return false;
    }
    std::size_t nibble = 0;
    for (std::size_t i = 0; i < uuid_text_size; ++i) {
        if (is_dash_position(i)) {
            if (id[i] != '-') {
                return false;
            }
            continue;
        }
        const int value = lower_hex_value(id[i]);
        if (value < 0) {
            return false;
        }
        if (nibble % 2 == 0) {
            out[nibble / 2] = static_cast<std::uint8_t>(value << 4);
        } else {
            out[nibble / 2] = static_cast<std::uint8_t>(out[nibble / 2] | value);
        }
        ++nibble;
    }
    return true;
}

}  // namespace

std::optional<session_key> session_key::from_id(std::string_view id)
{
    if (!is_storable_session_id(id)) {
        return std::nullopt;
    }
    session_key key;
    if (pack_canonical_uuid(id, key.bytes_.data())) {
        key.size_ = packed_uuid_size;
        key.packed_uuid_ = true;
        return key;
    }
    std::memcpy(key.bytes_.data(), id.data(), id.size());
    key.size_ = static_cast<std::uint8_t>(id.size());
    return key;
}

session_key session_key::from_stored(const std::uint8_t* bytes, std::size_t size, bool packed_uuid)
{
    session_key key;
    const std::size_t kept = std::min(size, key.bytes_.size());
    std::memcpy(key.bytes_.data(), bytes, kept);
    key.size_ = static_cast<std::uint8_t>(kept);
    key.packed_uuid_ = packed_uuid;
    return key;
}

std::uint64_t session_key::hash(std::uint64_t seed) const
{
    // FNV-1a over the stored bytes, then a 64-bit finaliser so the rbtree
    // key uses all bits; the packed flag is mixed in to keep forms apart.
    std::uint64_t h = 0xcbf29ce484222325ull ^ seed;
    h = (h ^ static_cast<std::uint64_t>(packed_uuid_)) * 0x100000001b3ull;
    for (std::size_t i = 0; i < size_; ++i) {
        h = (h ^ bytes_[i]) * 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

bool session_key::equals(const std::uint8_t* bytes, std::size_t size, bool packed_uuid) const
{
    return packed_uuid == packed_uuid_ && size == size_ && std::memcmp(bytes, bytes_.data(), size) == 0;
}

std::string session_key::to_id() const
{
    if (!packed_uuid_) {
        return std::string(reinterpret_cast<const char*>(bytes_.data()), size_);
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string text;
    text.reserve(uuid_text_size);
    for (std::size_t i = 0; i < packed_uuid_size; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            text.push_back('-');
        }
        text.push_back(digits[bytes_[i] >> 4]);
        text.push_back(digits[bytes_[i] & 0x0F]);
    }
    return text;
}

}  // namespace mcp_session
