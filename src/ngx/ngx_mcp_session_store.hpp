// The session store in a shared-memory slab zone, seen by every worker.
#pragma once

#include "ngx_mcp_session_conf.hpp"

#include "mcp_session/session_id.hpp"
#include "mcp_session/session_key.hpp"
#include "mcp_session/status.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace mcp_ngx {

enum class lookup_result { valid, unknown, expired, wrong_principal, wrong_tenant };

// What a request presents about who it is (digests of the configured
// mcp_session_principal / mcp_session_tenant values).
struct presented_binding {
    bool has_principal = false;
    std::uint64_t principal = 0;
    bool has_tenant = false;
    std::uint64_t tenant = 0;
    // A zone with redis=, once the cluster's key is known: the same
    // values digested with it (what sessions shared by nodes are bound to).
    bool cluster_key_known = false;
    std::uint64_t cluster_principal = 0;
    std::uint64_t cluster_tenant = 0;
};

struct lookup_outcome {
    lookup_result result = lookup_result::unknown;
    // The backend's own id for this session (issue mode), copied out:
    // in place when short (the usual UUID), else into long_backend_id.
    std::size_t backend_id_size = 0;
    char backend_id[mcp_session::max_verbatim_id_length] = {};
    std::string long_backend_id;

    std::string_view backend_id_view() const
    {
        return long_backend_id.empty() ? std::string_view{backend_id, backend_id_size} : long_backend_id;
    }

    // The upstream server the session is pinned to (mcp_session_sticky).
    std::size_t pinned_size = 0;
    char pinned[mcp_session::max_upstream_name] = {};
    std::string_view pinned_view() const { return {pinned, pinned_size}; }

    mcp_session::unix_ms created_ms = 0;          // for $mcp_session_age
    mcp_session::unix_ms previous_access_ms = 0;  // for $mcp_session_idle
    bool touched = false;  // its last access was written (at most once per touch granularity)
    // Bound under the cluster's key, which this request could not
    // present (not known yet): the binding cannot be checked now.
    bool binding_unverifiable = false;
};

struct insert_outcome {
    bool stored = false;       // false: the zone cannot hold even one session
    bool already_known = false;
    std::size_t evicted = 0;   // live sessions pushed out to make room
    // Evictions to report now: non-zero at most once per second per zone,
    // so a zone under pressure writes one warn line, not one per request.
    std::size_t evictions_to_log = 0;
};

// Each call takes and drops the zone lock once; none logs while holding it.
class session_store {
public:
    explicit session_store(zone_conf& zone) : zone_(zone) {}

    // A live session whose bindings match is touched; a mismatch leaves it
    // untouched; an expired one found is removed. `establishes`: this
    // request counts as use, so the session leaves the class of sessions
    // never used since their creation, which the zone evicts first (a bare
    // stream GET need not count: opening one and leaving is cheap).
    lookup_outcome validate(const mcp_session::session_key& key, mcp_session::unix_ms now,
                            const presented_binding& binding = {}, bool establishes = true);

    // Records a session (learned from the backend, or issued by nginx),
    // bound to what the creating request presented.
    insert_outcome record(const mcp_session::session_key& key, mcp_session::unix_ms now,
                          const presented_binding& binding = {});

    // Issue mode: remembers the backend's own id for one of nginx's new
    // sessions and, for mcp_session_heal, the initialize that made it.
    bool set_backend_id(const mcp_session::session_key& key, std::string_view backend_id,
                        std::string_view initialize = {});

    // mcp_session_heal: what a heal starts from, copied out.
    struct heal_facts {
        bool found = false;
        std::string initialize;  // the kept initialize body (empty: none)
        std::string backend_id;  // the backend id the session maps to now
        std::string pinned;      // and its pinned server
    };
    heal_facts heal_facts_of(const mcp_session::session_key& key);

    // mcp_session_heal: the session goes on in a new backend session,
    // `backend_id` on `server` (empty: the upstream is not sticky), and
    // the heal is counted, unless another request re-mapped the session
    // since this one was sent with `sent_backend_id` (superseded), or it
    // is gone or there is no room.
    enum class heal_result { healed, superseded, failed };
    heal_result heal(const mcp_session::session_key& key, std::string_view sent_backend_id,
                     std::string_view backend_id, std::string_view server);
    void note_heal_failed();

    // Pins a session to the upstream server that created it; false when
    // it is gone or the zone tracks too many servers (pin_slots).
    bool pin(const mcp_session::session_key& key, std::string_view server);

    bool remove(const mcp_session::session_key& key);

    // Ends a session whose pinned server is gone, or whose backend said it
    // no longer knows it; counted apart from DELETEs. With a
    // `sent_backend_id` (issue mode), only while the session still maps to
    // it: a request sent before a heal must not end the healed session.
    enum class loss { replica, backend };
    bool end_lost(const mcp_session::session_key& key, loss why, std::string_view sent_backend_id = {});

    // Removes up to `budget` expired sessions; claims the zone's sweep
    // slot first, so it returns 0 when another worker swept recently.
    std::size_t sweep_if_due(mcp_session::unix_ms now, std::size_t budget, bool* more);

    std::size_t count();

    // An id that could never be stored, answered 404 without a lookup.
    void note_rejected();

    // Counters and gauges copied under the lock.
    mcp_session::zone_status status();

    // The zone's key for binding digests (random per zone).
    std::uint64_t binding_key();
    // With redis=: the cluster's key, if known yet.
    bool cluster_binding_key(std::uint64_t* key);

private:
    // Ends a session, counted in `counter` (DELETE, or how it was lost);
    // with a `sent_backend_id`, only while the session still maps to it.
    bool remove_counted(const mcp_session::session_key& key, std::uint64_t mcp_session::zone_counters::*counter,
                        std::string_view sent_backend_id = {});

    zone_conf& zone_;
};

}  // namespace mcp_ngx
