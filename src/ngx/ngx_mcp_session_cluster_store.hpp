// The zone's side of sharing sessions through Redis (redis=): what a
// session looks like to the other nodes, and taking in one they made.
// Each call holds the zone lock once; none talks to Redis.
#pragma once

#include "ngx_mcp_session_conf.hpp"

#include "mcp_session/shared_record.hpp"
#include "mcp_session/state_snapshot.hpp"
#include "mcp_session/status.hpp"

#include <optional>
#include <utility>
#include <vector>

namespace mcp_ngx {

// The session as Redis should hold it; nullopt when the zone does not
// hold it, or it is bound under the zone's own key (made before the
// cluster's key was known: no other node could check it).
std::optional<mcp_session::shared_session> shared_view_of(zone_conf& zone, const mcp_session::session_key& key);

// A slice of every shareable session in hash order (the re-seed after
// Redis came back); true when the walk is done.
bool shared_slice(zone_conf& zone, mcp_session::save_cursor& cursor,
                  std::vector<std::pair<mcp_session::session_key, mcp_session::shared_session>>& out);

enum class adoption { adopted, known, no_room };
// Takes in a session from Redis (its digests are under the cluster key).
adoption adopt_shared(zone_conf& zone, const mcp_session::session_key& key, const mcp_session::shared_session& s,
                      mcp_session::unix_ms now);

// Another node ended the session (or Redis says it is over): the local
// copy goes, counted apart from this node's own ends.
bool remove_ended_elsewhere(zone_conf& zone, const mcp_session::session_key& key);

// The cluster's binding key, once agreed; kept in the zone across reloads
// (read with session_store::cluster_binding_key).
void learn_cluster_key(zone_conf& zone, std::uint64_t key);

// Adds to the zone's counters (round trips and errors come in batches).
void count_shared(zone_conf& zone, std::uint64_t mcp_session::zone_counters::*counter, std::uint64_t n = 1);

}  // namespace mcp_ngx
