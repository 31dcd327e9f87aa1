#include "ngx_mcp_session_store.hpp"

#include "ngx_mcp_session_zone.hpp"

namespace mcp_ngx {

using mcp_session::session_key;
using mcp_session::unix_ms;

namespace {

// Bounded work per request, as limit_req does: a couple of expired
// sessions are reclaimed before each allocation.
constexpr std::size_t expire_before_insert = 2;

}  // namespace

lookup_result session_store::validate(const session_key& key, unix_ms now)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    if (record == nullptr) {
        return lookup_result::unknown;
    }
    if (mcp_session::is_expired({record->created_ms, record->last_access_ms}, zone_.policy, now)) {
        zone.remove(record);
        return lookup_result::expired;
    }
    zone.touch(record, now);
    return lookup_result::valid;
}

insert_outcome session_store::record(const session_key& key, unix_ms now)
{
    insert_outcome outcome;
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();

    if (session_record* known = zone.find(key)) {
        zone.touch(known, now);
        outcome.stored = true;
        outcome.already_known = true;
        return outcome;
    }

    zone.remove_expired(now, expire_before_insert);
    session_record* fresh = zone.allocate(key);
    while (fresh == nullptr && zone.evict_least_recently_used()) {
        ++outcome.evicted;
        fresh = zone.allocate(key);
    }
    outcome.evictions_to_log = zone.note_evictions(outcome.evicted, now);
    if (fresh == nullptr) {
        return outcome;
    }
    zone.link(fresh, now);
    outcome.stored = true;
    return outcome;
}

bool session_store::remove(const session_key& key)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr) {
        return false;
    }
    tx.zone().remove(record);
    return true;
}

std::size_t session_store::sweep_if_due(unix_ms now, std::size_t budget, bool* more)
{
    zone_transaction tx(zone_);
    zone_shared& sh = tx.zone().shared();
    *more = false;
    if (!zone_.sweep.due(sh.next_sweep_ms, now)) {
        return 0;
    }
    const std::size_t removed = tx.zone().remove_expired(now, budget);
    // A sweep cut short by its budget keeps the slot and continues soon.
    *more = removed == budget;
    if (!*more) {
        sh.next_sweep_ms = zone_.sweep.next_after(now);
    }
    return removed;
}

std::size_t session_store::count()
{
    zone_transaction tx(zone_);
    return static_cast<std::size_t>(tx.zone().shared().sessions);
}

}  // namespace mcp_ngx
