// The session store in a shared-memory slab zone, seen by every worker.
#pragma once

#include "ngx_mcp_session_conf.hpp"

#include "mcp_session/session_key.hpp"

#include <cstddef>

namespace mcp_ngx {

enum class lookup_result { valid, unknown, expired };

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

    // A live session is touched; an expired one found is removed.
    lookup_result validate(const mcp_session::session_key& key, mcp_session::unix_ms now);

    // Records a session the backend created (or touches it if known).
    insert_outcome record(const mcp_session::session_key& key, mcp_session::unix_ms now);

    bool remove(const mcp_session::session_key& key);

    // Removes up to `budget` expired sessions; claims the zone's sweep
    // slot first, so it returns 0 when another worker swept recently.
    std::size_t sweep_if_due(mcp_session::unix_ms now, std::size_t budget, bool* more);

    std::size_t count();

private:
    zone_conf& zone_;
};

}  // namespace mcp_ngx
