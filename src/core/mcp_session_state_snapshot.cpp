#include "mcp_session/state_snapshot.hpp"

#include <algorithm>

namespace mcp_session {
namespace {

constexpr std::size_t mac_size = 32;
constexpr unix_ms min_lease_ms = 60 * 1000;

}  // namespace

state_snapshot::state_snapshot(const state_header& header, std::size_t max_bytes, std::size_t expected_sessions)
    : max_bytes_(max_bytes)
{
    // One reservation for the expected sessions and a sixteenth more, so
    // the buffer is rarely copied while it grows.
    const std::size_t expected = state_writer::framing_size() +
                                 (expected_sessions + expected_sessions / 16) * typical_saved_session_size();
    bytes_.reserve(std::min(expected, max_bytes_));
    writer_.emplace(bytes_, header);
}

void state_snapshot::make_room(std::size_t sessions)
{
    const std::size_t wanted = std::min(bytes_.size() + sessions * typical_saved_session_size() +
                                            state_writer::max_record_size() + mac_size,
                                        max_bytes_);
    if (wanted > bytes_.capacity()) {
        bytes_.reserve(std::min(std::max(wanted, bytes_.capacity() + bytes_.capacity() / 2), max_bytes_));
    }
}

state_snapshot::added state_snapshot::add(const session_key& key, const session_times& times,
                                          std::uint64_t next_event_id, std::uint8_t bound, std::uint64_t principal,
                                          std::uint64_t tenant, std::string_view backend_id,
                                          std::string_view pinned_server)
{
    const std::size_t size = state_writer::record_size(key.size(), backend_id.size(), pinned_server.size());
    if (bytes_.size() + size + mac_size > max_bytes_) {
        ++left_out_;
        return added::left_out;
    }
    return writer_->add(key, times, next_event_id, bound, principal, tenant, backend_id, pinned_server)
               ? added::yes
               : added::no_room;
}

const std::string& state_snapshot::finish(std::string_view key)
{
    writer_->finish(key);
    return bytes_;
}

std::size_t typical_saved_session_size() { return state_writer::record_size(session_key::packed_uuid_size, 0); }

unix_ms save_lease_ms(unix_ms interval_ms) { return std::max(interval_ms, min_lease_ms); }

}  // namespace mcp_session
