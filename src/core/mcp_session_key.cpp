#include "mcp_session/session_key.hpp"

#include "mcp_session/mac.hpp"

#include <algorithm>
#include <cstring>

namespace mcp_session {
namespace {

constexpr std::size_t uuid_text_size = 36;
constexpr char hex_digits[] = "0123456789abcdef";

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

// Packs the lowercase hex digits of `text` two to a byte, skipping the
// characters `skip` names. Only lowercase packs, so unpacking gives back
// the bytes the client sent (an uppercase id stays verbatim).
template <typename Skip>
bool pack_lower_hex(std::string_view text, std::uint8_t* out, Skip skip)
{
    std::size_t nibble = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (skip(i)) {
            continue;
        }
        const int value = lower_hex_value(text[i]);
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

bool pack_canonical_uuid(std::string_view id, std::uint8_t* out)
{
    if (id.size() != uuid_text_size) {
        return false;
    }
    for (std::size_t i = 0; i < uuid_text_size; ++i) {
        if (is_dash_position(i) && id[i] != '-') {
            return false;
        }
    }
    return pack_lower_hex(id, out, is_dash_position);
}

bool pack_even_hex(std::string_view id, std::uint8_t* out)
{
    return id.size() % 2 == 0 && pack_lower_hex(id, out, [](std::size_t) { return false; });
}

void append_hex(std::string& text, std::uint8_t byte)
{
    text.push_back(hex_digits[byte >> 4]);
    text.push_back(hex_digits[byte & 0x0F]);
}

}  // namespace

std::optional<session_key> session_key::from_id(std::string_view id)
{
    if (!is_storable_session_id(id)) {
        return std::nullopt;
    }
    session_key key;
    if (id.size() > max_verbatim_id_length) {
        const sha256_digest digest = sha256(id);
        std::memcpy(key.bytes_.data(), digest.data(), digest.size());
        key.size_ = digest_size;
        key.form_ = id_form::digest;
    } else if (pack_canonical_uuid(id, key.bytes_.data())) {
        key.size_ = packed_uuid_size;
        key.form_ = id_form::uuid;
    } else if (pack_even_hex(id, key.bytes_.data())) {
        key.size_ = static_cast<std::uint8_t>(id.size() / 2);
        key.form_ = id_form::lower_hex;
    } else {
        std::memcpy(key.bytes_.data(), id.data(), id.size());
        key.size_ = static_cast<std::uint8_t>(id.size());
        key.form_ = id_form::verbatim;
    }
    return key;
}

session_key session_key::from_stored(const std::uint8_t* bytes, std::size_t size, id_form form)
{
    session_key key;
    const std::size_t kept = std::min(size, key.bytes_.size());
    std::memcpy(key.bytes_.data(), bytes, kept);
    key.size_ = static_cast<std::uint8_t>(kept);
    key.form_ = form;
    return key;
}

bool session_key::is_canonical(const std::uint8_t* bytes, std::size_t size, std::uint8_t form)
{
    if (size == 0 || size > max_stored_size) {
        return false;
    }
    switch (static_cast<id_form>(form)) {
    case id_form::digest:
        return size == digest_size;  // any 32 bytes can be a digest
    case id_form::uuid:
        if (size != packed_uuid_size) {
            return false;
        }
        break;
    case id_form::lower_hex:
    case id_form::verbatim:
        break;
    default:
        return false;
    }
    const session_key key = from_stored(bytes, size, static_cast<id_form>(form));
    const std::optional<session_key> again = from_id(*key.to_id());
    return again && again->equals(bytes, size, key.form());
}

std::uint64_t session_key::hash(std::uint64_t seed) const
{
    // FNV-1a over the stored bytes, then a 64-bit finaliser so the index's
    // bucket (the top bits) depends on every byte; the form is mixed in to
    // keep forms apart.
    std::uint64_t h = 0xcbf29ce484222325ull ^ seed;
    h = (h ^ static_cast<std::uint64_t>(form_)) * 0x100000001b3ull;
    for (std::size_t i = 0; i < size_; ++i) {
        h = (h ^ bytes_[i]) * 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

bool session_key::equals(const std::uint8_t* bytes, std::size_t size, id_form form) const
{
    return form == form_ && size == size_ && std::memcmp(bytes, bytes_.data(), size) == 0;
}

std::optional<std::string> session_key::to_id() const
{
    std::string text;
    switch (form_) {
    case id_form::verbatim:
        return std::string(reinterpret_cast<const char*>(bytes_.data()), size_);
    case id_form::digest:
        return std::nullopt;
    case id_form::uuid:
        text.reserve(uuid_text_size);
        for (std::size_t i = 0; i < packed_uuid_size; ++i) {
            if (i == 4 || i == 6 || i == 8 || i == 10) {
                text.push_back('-');
            }
            append_hex(text, bytes_[i]);
        }
        return text;
    case id_form::lower_hex:
        text.reserve(2 * size_);
        for (std::size_t i = 0; i < size_; ++i) {
            append_hex(text, bytes_[i]);
        }
        return text;
    }
    return std::nullopt;
}

}  // namespace mcp_session
