#include "ngx_mcp_session_store.hpp"

#include "ngx_mcp_session_zone.hpp"

#include <algorithm>
#include <cstring>

namespace mcp_ngx {

using mcp_session::session_key;
using mcp_session::unix_ms;

namespace {

// Bounded work per request, as limit_req does: a couple of expired
// sessions are reclaimed before each allocation.
constexpr std::size_t expire_before_insert = 2;

// A binding belongs to the session, not to the location: a bound session
// fails closed where the request presents no value for it (a location
// without mcp_session_principal), as where it presents another. Principal
// first (401 outranks 409 where distinct answers are configured).
// A session bound under the cluster's key is compared with the values
// digested under it.
lookup_result check_binding(const session_extras* extras, const presented_binding& binding)
{
    if (extras == nullptr) {
        return lookup_result::valid;
    }
    const bool cluster = (extras->bound & bound_by_cluster_key) != 0;
    const std::uint64_t principal = cluster ? binding.cluster_principal : binding.principal;
    const std::uint64_t tenant = cluster ? binding.cluster_tenant : binding.tenant;
    if ((extras->bound & bound_principal) && (!binding.has_principal || extras->principal != principal)) {
        return lookup_result::wrong_principal;
    }
    if ((extras->bound & bound_tenant) && (!binding.has_tenant || extras->tenant != tenant)) {
        return lookup_result::wrong_tenant;
    }
    return lookup_result::valid;
}

session_extras extras_for(const presented_binding& binding)
{
    session_extras fields{};
    const bool cluster = binding.cluster_key_known;
    if (binding.has_principal) {
        fields.bound |= bound_principal;
        fields.principal = cluster ? binding.cluster_principal : binding.principal;
    }
    if (binding.has_tenant) {
        fields.bound |= bound_tenant;
        fields.tenant = cluster ? binding.cluster_tenant : binding.tenant;
    }
    if (cluster && fields.bound != 0) {
        fields.bound |= bound_by_cluster_key;
    }
    return fields;
}

// A key's hash, computed before the zone lock is taken, with its bucket
// already asked for.
std::uint64_t hash_ahead(zone_conf& zone, const session_key& key)
{
    const std::uint64_t hash = hash_of(zone, key);
    session_index(zone.shared->index, zone.pool).prefetch(hash);
    return hash;
}

}  // namespace

lookup_outcome session_store::validate(const session_key& key, unix_ms now, const presented_binding& binding,
                                      bool establishes)
{
    lookup_outcome outcome;
    const std::uint64_t hash = hash_ahead(zone_, key);
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key, hash);
    zone_shared& sh = zone.shared();
    if (record == nullptr) {
        ++sh.counters.rejected_unknown;
        outcome.result = lookup_result::unknown;
        return outcome;
    }
    if (mcp_session::is_expired(times_of(record), zone_.policy, now)) {
        zone.remove(record);
        ++sh.counters.expired_lazily;
        outcome.result = lookup_result::expired;
        return outcome;
    }
    if (record->extras != nullptr && (record->extras->bound & bound_by_cluster_key) && !binding.cluster_key_known &&
        (binding.has_principal || binding.has_tenant)) {
        outcome.result = lookup_result::unknown;
        outcome.binding_unverifiable = true;  // answered 503, never as unknown
        return outcome;
    }
    outcome.result = check_binding(record->extras, binding);
    if (outcome.result != lookup_result::valid) {
        return outcome;  // the rejected request changes nothing
    }
    ++sh.counters.validated;
    outcome.created_ms = record->created_ms;
    outcome.previous_access_ms = record->last_access_ms;
    // A session touched within the touch granularity (1 s at most) is left
    // as it is: no write to the record or the LRU links, so busy sessions
    // stop dirtying shared cache lines on every request. Its idle clock and
    // LRU place then lag its last use by less than the granularity. The
    // first use after creation always writes (it establishes the session).
    const bool establishing = establishes && !(record->flags & record_established);
    if (establishing || mcp_session::touch_is_due(times_of(record), zone_.policy, now)) {
        zone.touch(record, now);
        outcome.touched = true;
    }
    if (establishing) {
        zone.establish(record);  // named after its creation: evicted after every unused session
    }
    const std::string_view backend_id = locked_zone::backend_id_of(record);
    if (backend_id.size() > sizeof(outcome.backend_id)) {
        outcome.long_backend_id.assign(backend_id);  // may throw: the transaction unlocks on unwind
    } else if (!backend_id.empty()) {  // an empty view's data() may be null, which memcpy must not get
        outcome.backend_id_size = backend_id.size();
        std::memcpy(outcome.backend_id, backend_id.data(), outcome.backend_id_size);
    }
    const std::string_view pinned = zone.pinned_server(record);
    if (!pinned.empty()) {
        outcome.pinned_size = pinned.size();
        std::memcpy(outcome.pinned, pinned.data(), pinned.size());
    }
    return outcome;
}

insert_outcome session_store::record(const session_key& key, unix_ms now, const presented_binding& binding)
{
    insert_outcome outcome;
    const std::uint64_t hash = hash_ahead(zone_, key);
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();

    if (session_record* known = zone.find(key, hash)) {
        zone.touch(known, now);
        outcome.stored = true;
        outcome.already_known = true;
        return outcome;
    }

    zone.remove_expired(now, expire_before_insert);
    // A bounded few sessions may make room (mcp_session/room.hpp); every
    // allocation adds its evictions to the zone's unlogged count.
    const std::uint64_t evicted_before = zone.shared().counters.evicted;
    room_report room;
    session_record* fresh = zone.allocate(key, hash, now, room);
    // An unbound session has no extras: nothing to allocate or free.
    const bool unbound = !binding.has_principal && !binding.has_tenant;
    const bool bound = fresh != nullptr && (unbound || zone.set_extras(fresh, extras_for(binding), {}));
    outcome.evicted = static_cast<std::size_t>(zone.shared().counters.evicted - evicted_before);
    outcome.evictions_to_log = zone.note_evictions(0, now);
    if (!bound) {
        if (fresh != nullptr) {
            zone.discard(fresh);
        }
        ++zone.shared().counters.sessions_no_room;
        return outcome;
    }
    zone.link(fresh, now);
    ++zone.shared().counters.created;
    outcome.stored = true;
    return outcome;
}

bool session_store::set_backend_id(const session_key& key, std::string_view backend_id, std::string_view initialize)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr) {
        return false;
    }
    return tx.zone().set_backend_id(record, backend_id, initialize);
}

session_store::heal_facts session_store::heal_facts_of(const session_key& key)
{
    zone_transaction tx(zone_);
    const session_record* record = tx.zone().find(key);
    heal_facts facts;
    if (record != nullptr) {  // the copies may throw: the transaction unlocks on unwind
        facts.found = true;
        facts.initialize.assign(locked_zone::initialize_of(record));
        facts.backend_id.assign(locked_zone::backend_id_of(record));
        facts.pinned.assign(tx.zone().pinned_server(record));
    }
    return facts;
}

session_store::heal_result session_store::heal(const session_key& key, std::string_view sent_backend_id,
                                               std::string_view backend_id, std::string_view server)
{
    zone_transaction tx(zone_);
    locked_zone& zone = tx.zone();
    session_record* record = zone.find(key);
    if (record == nullptr) {
        return heal_result::failed;
    }
    if (locked_zone::backend_id_of(record) != sent_backend_id) {
        return heal_result::superseded;
    }
    if (!zone.set_backend_id(record, backend_id, locked_zone::initialize_of(record))) {
        return heal_result::failed;
    }
    if (!server.empty()) {
        zone.pin(record, server);  // no free slot: balanced per request, as a new session would be
    }
    ++zone.shared().counters.sessions_healed;
    return heal_result::healed;
}

void session_store::note_heal_failed()
{
    zone_transaction tx(zone_);
    ++tx.zone().shared().counters.heals_failed;
}

std::uint64_t session_store::binding_key()
{
    return zone_.shared->hash_seed;  // fixed at zone creation: no lock needed
}

bool session_store::cluster_binding_key(std::uint64_t* key)
{
    zone_transaction tx(zone_);
    const zone_shared& sh = tx.zone().shared();
    *key = sh.cluster_binding_key;
    return sh.cluster_key_known != 0;
}

bool session_store::pin(const session_key& key, std::string_view server)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    return record != nullptr && tx.zone().pin(record, server);
}

bool session_store::end_lost(const session_key& key, loss why, std::string_view sent_backend_id)
{
    return remove_counted(key,
                          why == loss::replica ? &mcp_session::zone_counters::sessions_replica_lost
                                               : &mcp_session::zone_counters::sessions_backend_lost,
                          sent_backend_id);
}

bool session_store::remove(const session_key& key) { return remove_counted(key, &mcp_session::zone_counters::deleted); }

bool session_store::remove_counted(const session_key& key, std::uint64_t mcp_session::zone_counters::*counter,
                                   std::string_view sent_backend_id)
{
    zone_transaction tx(zone_);
    session_record* record = tx.zone().find(key);
    if (record == nullptr ||
        (!sent_backend_id.empty() && locked_zone::backend_id_of(record) != sent_backend_id)) {
        return false;
    }
    tx.zone().remove(record);
    ++(tx.zone().shared().counters.*counter);
    return true;
}

void session_store::note_rejected()
{
    zone_transaction tx(zone_);
    ++tx.zone().shared().counters.rejected_unknown;
}

mcp_session::zone_status session_store::status()
{
    mcp_session::zone_status status;
    {
        zone_transaction tx(zone_);
        const zone_shared& sh = tx.zone().shared();
        status.sessions = sh.sessions;
        status.sessions_with_ring = sh.sessions_with_ring;
        status.open_streams = sh.open_streams;
        status.counters = sh.counters;
        status.bytes_free = static_cast<std::uint64_t>(zone_.pool->pfree) * ngx_pagesize;
        for (std::size_t i = 0; sh.pins != nullptr && i < pin_slots; ++i) {
            const upstream_pin& slot = sh.pins[i];
            if (slot.sessions > 0) {
                status.upstream_sessions[status.upstreams++] = {slot.sessions, slot.size, {}};
                std::memcpy(status.upstream_sessions[status.upstreams - 1].name, slot.name, slot.size);
            }
        }
    }
    // Formatting and allocation happen after the lock is dropped.
    status.zone.assign(reinterpret_cast<const char*>(zone_.name.data), zone_.name.len);
    status.size = zone_.shm_zone->shm.size;
    status.bytes_used = status.size > status.bytes_free ? status.size - status.bytes_free : 0;
    return status;
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
