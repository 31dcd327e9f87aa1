#include "mcp_session/state_file.hpp"

#include "mcp_session/mac.hpp"

#include <algorithm>
#include <cstring>

namespace mcp_session {
namespace {

constexpr char magic[8] = {'M', 'C', 'P', 'S', 'T', 'A', 'T', 'E'};
// magic, version, reserved, binding key, saved at, count
constexpr std::size_t header_size = 8 + 4 + 4 + 8 + 8 + 8;
constexpr std::size_t saved_at_offset = header_size - 16;
constexpr std::size_t mac_size = sizeof(sha256_digest);
// created, last access, next event id, principal, tenant; bound, id form,
// id size, backend size (2 bytes), pinned server size; then the id, the
// backend id and the pinned server.
constexpr std::size_t record_fixed_size = 5 * 8 + 6;
constexpr std::size_t version_3_record_fixed_size = 5 * 8 + 5;  // no pinned server
constexpr std::size_t version_2_record_fixed_size = 5 * 8 + 4;  // backend size in 1 byte
constexpr std::size_t max_backend_id_size = max_session_id_length;

// Every number in the file is little-endian, `size` bytes wide.
void put_le(char* at, std::uint64_t v, int size)
{
    for (int i = 0; i < size; ++i) {
        at[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    }
}

void append_le(std::string& out, std::uint64_t v, int size)
{
    char bytes[8];
    put_le(bytes, v, size);
    out.append(bytes, static_cast<std::size_t>(size));
}

void append_u64(std::string& out, std::uint64_t v) { append_le(out, v, 8); }

void append_u32(std::string& out, std::uint32_t v) { append_le(out, v, 4); }


class cursor {
public:
    explicit cursor(std::string_view bytes) : bytes_(bytes) {}
    bool has(std::size_t n) const { return bytes_.size() - at_ >= n; }
    std::uint64_t u64() { return little_endian(8); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(little_endian(4)); }
    std::uint16_t u16() { return static_cast<std::uint16_t>(little_endian(2)); }
    std::uint8_t u8() { return static_cast<std::uint8_t>(bytes_[at_++]); }
    std::string_view take(std::size_t n)
    {
        const std::string_view v = bytes_.substr(at_, n);
        at_ += n;
        return v;
    }
    std::size_t left() const { return bytes_.size() - at_; }

private:
    std::uint64_t little_endian(int size)
    {
        std::uint64_t v = 0;
        for (int i = 0; i < size; ++i) {
            v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(bytes_[at_ + static_cast<std::size_t>(i)])) << (8 * i);
        }
        at_ += static_cast<std::size_t>(size);
        return v;
    }

    std::string_view bytes_;
    std::size_t at_ = 0;
};

state_contents refuse(std::string why)
{
    state_contents c;
    c.error = std::move(why);
    return c;
}

}  // namespace

std::size_t state_writer::record_size(std::size_t id_size, std::size_t backend_id_size, std::size_t pinned_size)
{
    return record_fixed_size + id_size + backend_id_size + pinned_size;
}

std::size_t state_writer::max_record_size()
{
    return record_size(session_key::max_stored_size, max_backend_id_size, max_pinned_server_length);
}

bool is_storable_server_name(std::string_view name)
{
    return name.size() <= max_pinned_server_length &&
           std::all_of(name.begin(), name.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::size_t state_writer::framing_size() { return header_size + mac_size; }

state_writer::state_writer(std::string& out, const state_header& header) : out_(out)
{
    out_.clear();
    out_.append(magic, sizeof(magic));
    append_u32(out_, state_file_version);
    append_u32(out_, 0);
    append_u64(out_, header.binding_key);
    saved_at_at_ = out_.size();
    saved_at_ = header.saved_at_ms;
    append_u64(out_, static_cast<std::uint64_t>(header.saved_at_ms));
    count_at_ = out_.size();
    append_u64(out_, 0);
}

bool state_writer::add(const session_key& key, const session_times& times, std::uint64_t next_event_id,
                       std::uint8_t bound, std::uint64_t principal, std::uint64_t tenant, std::string_view backend_id,
                       std::string_view pinned_server)
{
    if (!is_storable_server_name(pinned_server)) {
        pinned_server = {};  // the zone never holds one; saved unpinned rather than refused on reading
    }
    const std::size_t size = record_size(key.size(), backend_id.size(), pinned_server.size());
    if (backend_id.size() > max_backend_id_size || out_.size() + size + mac_size > out_.capacity()) {
        return false;
    }
    append_u64(out_, static_cast<std::uint64_t>(times.created_ms));
    append_u64(out_, static_cast<std::uint64_t>(times.last_access_ms));
    append_u64(out_, next_event_id);
    append_u64(out_, principal);
    append_u64(out_, tenant);
    out_.push_back(static_cast<char>(bound));
    out_.push_back(static_cast<char>(key.form()));
    out_.push_back(static_cast<char>(key.size()));
    append_le(out_, backend_id.size(), 2);
    out_.push_back(static_cast<char>(pinned_server.size()));
    out_.append(reinterpret_cast<const char*>(key.data()), key.size());
    out_.append(backend_id.data(), backend_id.size());
    out_.append(pinned_server.data(), pinned_server.size());
    saved_at_ = std::max(saved_at_, times.last_access_ms);
    ++count_;
    return true;
}

void state_writer::finish(std::string_view key)
{
    put_le(&out_[saved_at_at_], static_cast<std::uint64_t>(saved_at_), 8);
    put_le(&out_[count_at_], count_, 8);
    const sha256_digest mac = hmac_sha256(key, out_);
    out_.append(reinterpret_cast<const char*>(mac.data()), mac.size());
}

state_contents read_state(std::string_view bytes, const state_limits& limits)
{
    const std::size_t max_sessions = limits.max_sessions;
    if (bytes.size() < header_size + mac_size) {
        return refuse("truncated: " + std::to_string(bytes.size()) + " bytes");
    }
    if (std::memcmp(bytes.data(), magic, sizeof(magic)) != 0) {
        return refuse("not a state file");
    }
    const std::string_view body = bytes.substr(0, bytes.size() - mac_size);
    cursor in(bytes);
    in.take(sizeof(magic));
    const std::uint32_t version = in.u32();
    if (version < oldest_state_file_version || version > state_file_version) {
        return refuse("version " + std::to_string(version) + ", this module reads version " +
                      std::to_string(state_file_version));
    }
    // Authenticated before anything else is believed: a file nginx did not
    // write with this key (planted, altered or truncated) stops here.
    const sha256_digest mac = hmac_sha256(limits.key, body);
    if (limits.key.size() != state_key_size ||
        !same_digest(mac.data(), reinterpret_cast<const std::uint8_t*>(bytes.data() + body.size()), mac_size)) {
        return refuse("authentication failed (altered, truncated, or not written with this key file)");
    }
    if (in.u32() != 0) {
        return refuse("reserved header field set (written by another version)");
    }
    state_contents c;
    c.header.binding_key = in.u64();
    c.header.saved_at_ms = static_cast<unix_ms>(in.u64());
    if (c.header.saved_at_ms < 0 || c.header.saved_at_ms > limits.now + max_state_clock_skew_ms) {
        return refuse("saved at " + std::to_string(c.header.saved_at_ms) + " ms, in the future (now " +
                      std::to_string(limits.now) + ")");
    }
    const std::uint64_t count = in.u64();
    if (count > max_sessions) {
        return refuse(std::to_string(count) + " sessions, more than the zone can hold (" +
                      std::to_string(max_sessions) + ")");
    }
    // Each record takes at least its fixed part: a count that cannot fit
    // is refused before anything is reserved.
    const std::size_t fixed_size = version == 2   ? version_2_record_fixed_size
                                   : version == 3 ? version_3_record_fixed_size
                                                  : record_fixed_size;
    if (count > (in.left() - mac_size) / fixed_size) {
        return refuse("truncated: fewer records than the header counts");
    }
    c.sessions.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
        if (!in.has(fixed_size + mac_size)) {
            return refuse("truncated in record " + std::to_string(i));
        }
        saved_session s;
        s.times.created_ms = static_cast<unix_ms>(in.u64());
        s.times.last_access_ms = static_cast<unix_ms>(in.u64());
        s.next_event_id = in.u64();
        s.principal = in.u64();
        s.tenant = in.u64();
        s.bound = in.u8();
        const std::uint8_t form = in.u8();
        const std::size_t id_size = in.u8();
        const std::size_t backend_size = version == 2 ? in.u8() : in.u16();
        const std::size_t pinned_size = version >= 4 ? in.u8() : 0;
        if (!in.has(id_size + backend_size + pinned_size + mac_size)) {
            return refuse("truncated in record " + std::to_string(i));
        }
        const std::string_view id = in.take(id_size);
        const std::string_view backend = in.take(backend_size);
        const std::string_view pinned = in.take(pinned_size);
        // Only the form the zone itself would give the id (version 2 knew
        // two forms, and packed no hex id, so such records are re-packed).
        const auto* id_bytes = reinterpret_cast<const std::uint8_t*>(id.data());
        if (version == 2 && form == 0 && id_size > 0) {
            const auto repacked = session_key::from_id(id);
            if (!repacked) {
                return refuse("record " + std::to_string(i) + ": malformed id");
            }
            s.key = *repacked;
        } else if ((version == 2 && form > 1) || !session_key::is_canonical(id_bytes, id_size, form)) {
            return refuse("record " + std::to_string(i) + ": malformed id");
        } else {
            s.key = session_key::from_stored(id_bytes, id_size, static_cast<id_form>(form));
        }
        if (s.bound > 7 || s.bound == 4 || (!backend.empty() && !is_storable_session_id(backend)) ||
            !is_storable_server_name(pinned)) {
            return refuse("record " + std::to_string(i) + ": malformed fields");
        }
        // Times the writer took from the clock: never before 1970, never
        // after the save (a far-future creation would never expire).
        if (s.times.created_ms < 0 || s.times.last_access_ms < s.times.created_ms ||
            s.times.last_access_ms > c.header.saved_at_ms) {
            return refuse("record " + std::to_string(i) + ": times out of bounds");
        }
        if (s.next_event_id > max_saved_event_id) {
            return refuse("record " + std::to_string(i) + ": event id " + std::to_string(s.next_event_id) +
                          " out of bounds");
        }
        s.backend_id.assign(backend);
        s.pinned_server.assign(pinned);
        c.sessions.push_back(std::move(s));
    }
    if (in.left() != mac_size) {
        return refuse("trailing bytes after the last record");
    }
    c.ok = true;
    return c;
}

bool worth_restoring(const saved_session& session, const expiry_policy& policy, unix_ms now)
{
    return !is_expired(restored_times(session.times, now), policy, now);
}

session_times restored_times(const session_times& saved, unix_ms now)
{
    return {std::min(saved.created_ms, now), std::min(saved.last_access_ms, now)};
}

}  // namespace mcp_session
