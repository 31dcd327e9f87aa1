#include "ngx_mcp_session_cluster_store.hpp"

#include "ngx_mcp_session_zone.hpp"

namespace mcp_ngx {
namespace {

// Sessions per re-seed slice: one short hold of the lock each.
constexpr std::size_t shared_slice_sessions = 256;
constexpr std::uint32_t shared_slice_buckets = 65536;

std::optional<mcp_session::shared_session> view_of(const locked_zone& zone, const session_record* record)
{
    mcp_session::shared_session s;
    s.created_ms = record->created_ms;
    s.last_access_ms = record->last_access_ms;
    if (const session_extras* extras = record->extras) {
        const std::uint8_t bound = extras->bound & (bound_principal | bound_tenant);
        if (bound != 0 && !(extras->bound & bound_by_cluster_key)) {
            return std::nullopt;
        }
        s.bound = bound;
        s.principal = extras->principal;
        s.tenant = extras->tenant;
    }
    const std::string_view backend_id = locked_zone::backend_id_of(record);
    if (backend_id.size() > mcp_session::max_shared_backend_id) {
        return std::nullopt;  // longer ids stay this node's (a record stays small)
    }
    s.backend_id.assign(backend_id);
    s.pinned_server.assign(zone.pinned_server(record));
    return s;
}

}  // namespace

std::optional<mcp_session::shared_session> shared_view_of(zone_conf& zone, const mcp_session::session_key& key)
{
    zone_transaction tx(zone);
    const session_record* record = tx.zone().find(key);
    if (record == nullptr) {
        return std::nullopt;
    }
    return view_of(tx.zone(), record);  // copies may throw: the transaction unlocks on unwind
}

bool shared_slice(zone_conf& zone, mcp_session::save_cursor& cursor,
                  std::vector<std::pair<mcp_session::session_key, mcp_session::shared_session>>& out)
{
    out.reserve(out.size() + shared_slice_sessions);
    zone_transaction tx(zone);
    return walk_slice(tx.zone(), cursor, shared_slice_sessions, shared_slice_buckets, [&](session_record* r) {
        if (auto view = view_of(tx.zone(), r)) {
            out.emplace_back(key_of(r), std::move(*view));
        }
        return true;
    });
}

adoption adopt_shared(zone_conf& zone, const mcp_session::session_key& key, const mcp_session::shared_session& s,
                      mcp_session::unix_ms now)
{
    zone_transaction tx(zone);
    locked_zone& z = tx.zone();
    const std::uint64_t hash = z.hash_of(key);
    if (session_record* known = z.find(key, hash)) {
        // This node's copy was behind: the cluster's use counts.
        if (s.last_access_ms > known->last_access_ms) {
            z.touch(known, s.last_access_ms);
        }
        return adoption::known;
    }
    z.remove_expired(now, 2);
    room_report room;
    session_record* record = z.allocate(key, hash, now, room);
    if (record == nullptr) {
        ++z.shared().counters.sessions_no_room;
        return adoption::no_room;
    }
    session_extras extras{};
    extras.bound = s.bound;
    if (s.bound != 0) {
        extras.bound |= bound_by_cluster_key;
        extras.principal = s.principal;
        extras.tenant = s.tenant;
    }
    if (!z.set_extras(record, extras, s.backend_id)) {
        z.discard(record);
        ++z.shared().counters.sessions_no_room;
        return adoption::no_room;
    }
    z.link_adopted(record, {s.created_ms, s.last_access_ms});
    if (!s.pinned_server.empty()) {
        z.pin(record, s.pinned_server);  // no slot left: balanced, and pinned again by its next answer
    }
    ++z.shared().counters.shared_adopted;
    return adoption::adopted;
}

bool remove_ended_elsewhere(zone_conf& zone, const mcp_session::session_key& key)
{
    zone_transaction tx(zone);
    session_record* record = tx.zone().find(key);
    if (record == nullptr) {
        return false;
    }
    tx.zone().remove(record);
    ++tx.zone().shared().counters.shared_remote_ends;
    return true;
}

void learn_cluster_key(zone_conf& zone, std::uint64_t key)
{
    zone_transaction tx(zone);
    tx.zone().shared().cluster_binding_key = key;
    tx.zone().shared().cluster_key_known = 1;
}

void count_shared(zone_conf& zone, std::uint64_t mcp_session::zone_counters::*counter, std::uint64_t n)
{
    zone_transaction tx(zone);
    tx.zone().shared().counters.*counter += n;
}

}  // namespace mcp_ngx
