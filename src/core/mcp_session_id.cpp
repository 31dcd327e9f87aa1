#include "mcp_session/session_id.hpp"
#include "mcp_session/text.hpp"

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <algorithm>

namespace mcp_session {

std::string make_session_id_v7(std::int64_t unix_ms, const random_bits& entropy)
{
    boost::uuids::uuid id{};
    std::copy(entropy.begin(), entropy.end(), id.begin());

    const auto ms = static_cast<std::uint64_t>(unix_ms) & 0xFFFFFFFFFFFFull;
    for (int i = 0; i < 6; ++i) {
        id.data[i] = static_cast<std::uint8_t>(ms >> (8 * (5 - i)));
    }
    id.data[6] = static_cast<std::uint8_t>(0x70 | (id.data[6] & 0x0F));  // version 7
    id.data[8] = static_cast<std::uint8_t>(0x80 | (id.data[8] & 0x3F));  // variant 10
    return boost::uuids::to_string(id);
}

// Boost's random_generator reads getrandom()/urandom: a CSPRNG, not a PRNG.
struct session_id_generator::impl {
    boost::uuids::random_generator os_random;
};

session_id_generator::session_id_generator() : impl_(new impl) {}

session_id_generator::~session_id_generator() { delete impl_; }

std::string session_id_generator::next(std::int64_t unix_ms)
{
    const boost::uuids::uuid fresh = impl_->os_random();
    random_bits entropy{};
    std::copy(fresh.begin(), fresh.end(), entropy.begin());
    return make_session_id_v7(unix_ms, entropy);
}

std::optional<std::string_view> parse_session_header(std::string_view raw)
{
    raw = trim_ows(raw);
    if (raw.empty()) {
        return std::nullopt;
    }
    return raw;
}

bool is_storable_session_id(std::string_view id)
{
    if (id.empty() || id.size() > max_session_id_length) {
        return false;
    }
    return std::all_of(id.begin(), id.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte >= 0x21 && byte <= 0x7E;
    });
}

}  // namespace mcp_session
