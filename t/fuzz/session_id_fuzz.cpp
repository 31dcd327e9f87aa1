// Mcp-Session-Id header parsing, the storable-id rule, the key form kept in
// shared memory (round trip, equality, hash) and nginx's own UUIDv7 ids.
#include "fuzz_check.hpp"
#include "mcp_session/session_id.hpp"
#include "mcp_session/session_key.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

using namespace mcp_session;

namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

bool all_ows(std::string_view s)
{
    for (const char c : s) {
        if (!is_ows(c)) {
            return false;
        }
    }
    return true;
}

bool storable_reference(std::string_view id)
{
    if (id.empty() || id.size() > max_session_id_length) {
        return false;
    }
    for (const char c : id) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x21 || byte > 0x7E) {
            return false;
        }
    }
    return true;
}

bool canonical_uuid_reference(std::string_view id)
{
    if (id.size() != 36) {
        return false;
    }
    for (std::size_t i = 0; i < id.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        const char c = id[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

bool even_lower_hex_reference(std::string_view id)
{
    if (id.size() % 2 != 0) {
        return false;
    }
    for (const char c : id) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

id_form form_reference(std::string_view id)
{
    if (id.size() > max_verbatim_id_length) {
        return id_form::digest;
    }
    if (canonical_uuid_reference(id)) {
        return id_form::uuid;
    }
    return even_lower_hex_reference(id) ? id_form::lower_hex : id_form::verbatim;
}

std::size_t stored_size_reference(std::string_view id)
{
    switch (form_reference(id)) {
    case id_form::digest:
        return session_key::digest_size;
    case id_form::uuid:
        return session_key::packed_uuid_size;
    case id_form::lower_hex:
        return id.size() / 2;
    case id_form::verbatim:
        break;
    }
    return id.size();
}

int hex_value(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

void check_header(std::string_view raw)
{
    const std::optional<std::string_view> value = parse_session_header(raw);
    FUZZ_CHECK(value.has_value() == !all_ows(raw));
    if (!value) {
        return;
    }
    // A view into the header, with only optional whitespace cut off each side.
    FUZZ_CHECK(!value->empty());
    FUZZ_CHECK(value->data() >= raw.data());
    FUZZ_CHECK(value->data() + value->size() <= raw.data() + raw.size());
    FUZZ_CHECK(!is_ows(value->front()) && !is_ows(value->back()));
    const std::size_t head = static_cast<std::size_t>(value->data() - raw.data());
    FUZZ_CHECK(all_ows(raw.substr(0, head)));
    FUZZ_CHECK(all_ows(raw.substr(head + value->size())));
}

void check_key(std::string_view id)
{
    const bool storable = is_storable_session_id(id);
    FUZZ_CHECK(storable == storable_reference(id));
    const std::optional<session_key> key = session_key::from_id(id);
    FUZZ_CHECK(key.has_value() == storable);
    if (!key) {
        return;
    }
    FUZZ_CHECK(key->form() == form_reference(id));
    FUZZ_CHECK(key->size() == stored_size_reference(id));
    FUZZ_CHECK(key->size() <= session_key::max_stored_size);
    FUZZ_CHECK(key->form() == id_form::digest ? !key->to_id() : key->to_id() == id);
    FUZZ_CHECK(session_key::is_canonical(key->data(), key->size(), static_cast<std::uint8_t>(key->form())));
    // What a worker rebuilds from shared memory is the same key.
    const session_key stored = session_key::from_stored(key->data(), key->size(), key->form());
    FUZZ_CHECK(stored.equals(key->data(), key->size(), key->form()));
    FUZZ_CHECK(key->equals(stored.data(), stored.size(), stored.form()));
    FUZZ_CHECK(stored.to_id() == key->to_id());
    for (const std::uint64_t seed : {0ull, 1ull, 0x9e3779b97f4a7c15ull}) {
        FUZZ_CHECK(stored.hash(seed) == key->hash(seed));
    }
}

// Two ids give equal keys exactly when they are the same bytes.
void check_key_pair(std::string_view a, std::string_view b)
{
    const std::optional<session_key> ka = session_key::from_id(a);
    const std::optional<session_key> kb = session_key::from_id(b);
    if (!ka || !kb) {
        return;
    }
    const bool same = ka->equals(kb->data(), kb->size(), kb->form());
    FUZZ_CHECK(same == (a == b));
    FUZZ_CHECK(same == kb->equals(ka->data(), ka->size(), ka->form()));
    if (same) {
        FUZZ_CHECK(ka->hash(7) == kb->hash(7));
    }
}

void check_v7(const std::uint8_t* data)
{
    std::int64_t ms = 0;
    std::memcpy(&ms, data, sizeof(ms));
    random_bits entropy{};
    std::memcpy(entropy.data(), data + sizeof(ms), entropy.size());

    const std::string id = make_session_id_v7(ms, entropy);
    FUZZ_CHECK(canonical_uuid_reference(id));
    FUZZ_CHECK(is_storable_session_id(id));
    std::uint8_t bytes[16] = {};
    std::size_t nibble = 0;
    for (const char c : id) {
        if (c != '-') {
            bytes[nibble / 2] = static_cast<std::uint8_t>(bytes[nibble / 2] | (hex_value(c) << (nibble % 2 ? 0 : 4)));
            ++nibble;
        }
    }
    std::uint64_t stamp = 0;
    for (int i = 0; i < 6; ++i) {
        stamp = (stamp << 8) | bytes[i];
    }
    FUZZ_CHECK(stamp == (static_cast<std::uint64_t>(ms) & 0xFFFFFFFFFFFFull));
    FUZZ_CHECK((bytes[6] >> 4) == 7);           // version
    FUZZ_CHECK((bytes[8] >> 6) == 2);           // variant 10
    FUZZ_CHECK((bytes[6] & 0x0F) == (entropy[6] & 0x0F));
    FUZZ_CHECK((bytes[8] & 0x3F) == (entropy[8] & 0x3F));
    FUZZ_CHECK(bytes[7] == entropy[7]);
    FUZZ_CHECK(std::memcmp(bytes + 9, entropy.data() + 9, 7) == 0);

    const std::optional<session_key> key = session_key::from_id(id);
    FUZZ_CHECK(key && key->form() == id_form::uuid && key->to_id() == id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view raw(reinterpret_cast<const char*>(data), size);
    check_header(raw);
    check_key(raw);
    if (const auto value = parse_session_header(raw)) {
        check_key(*value);
        // The same id with one letter's case flipped is another session.
        std::string other(*value);
        const std::size_t at = static_cast<unsigned char>(raw.back()) % other.size();
        const char c = other[at];
        if (c >= 'a' && c <= 'z') {
            other[at] = static_cast<char>(c - 'a' + 'A');
        } else if (c >= 'A' && c <= 'Z') {
            other[at] = static_cast<char>(c - 'A' + 'a');
        }
        check_key_pair(*value, other);
        check_key_pair(*value, *value);
    }
    if (size >= 24) {
        check_v7(data);
    }
    return 0;
}
