// Streams across nginx nodes (redis=). Redis numbers every event of a
// session and keeps the newest in a bounded Redis Stream
// (`<prefix>e:{TOKEN}`, MAXLEN ~ the ring's size), so an id means the
// same event on every node; each new event is published on the session's
// channel (`<prefix>ev:{TOKEN}`), which the workers streaming the session
// have joined, and lands in their zone's ring by its cluster id (the ring
// mirrors what the node received). A GET makes its stream the session's
// listener cluster-wide (`<prefix>l:{TOKEN}`, announced on the channel),
// which ends the previous one wherever it is, and catches up from the
// Redis Stream in the same script. Keys share the session's hash tag.
#pragma once

#include "ngx_mcp_session_conf.hpp"

#include "mcp_session/session_key.hpp"
#include "mcp_session/shared_events.hpp"
#include "mcp_session/sse_relay.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

struct redisReply;

namespace mcp_ngx {

struct cluster_node;

// Whether the zone shares its events through Redis.
bool shares_events(const zone_conf& zone);

// start_clusters: the scripts and this worker's listener name.
void prepare_shared_streams(cluster_node& node);

// The cluster numbers `event` (its id is ignored) and sends it to every
// node streaming the session. `known_here`: this node holds a live copy
// (a record Redis lacks then is only not re-seeded yet). `numbered` gets
// the id, or one of the outcomes below; it may be empty.
inline constexpr std::int64_t append_unavailable = 0;  // Redis could not be asked
inline constexpr std::int64_t append_unknown = -1;     // no such session in the cluster
inline constexpr std::int64_t append_ended = -2;       // ended (a tombstone)
using numbered_handler = std::function<void(std::int64_t)>;
void append_shared_event(zone_conf& zone, const mcp_session::session_key& key, const mcp_session::shared_event& event,
                         bool known_here, numbered_handler numbered);

// Issue mode: the session whose backend knows it as `backend_id`, as
// Redis has it; `found` gets nullopt when Redis knows none (or cannot be asked).
void find_by_backend_id(zone_conf& zone, std::string_view backend_id,
                        std::function<void(std::optional<mcp_session::session_key>)> found);

// Messages of the backend's own stream of the session (counted when numbered).
void append_backend_messages(zone_conf& zone, const mcp_session::session_key& key,
                             const std::vector<std::string>& messages);

// A stream of the session opened here with `token`. True: it waits for
// shared_stream_ready (ngx_mcp_session_stream.cpp), which comes once the
// ring holds what Redis does (or Redis could not be asked); false: Redis
// cannot be reached now, the stream goes on with this node's ring, which
// catches up once Redis is back. close_shared_stream ends either.
// `takes`: the session's standalone stream, which becomes the cluster's
// only one; else the resume of a POST stream, which only reads.
bool open_shared_stream(zone_conf& zone, const mcp_session::session_key& key, std::uint64_t token, bool takes);

// POST streams recorded across nodes: P is this worker's (a random base
// and a count, so two nodes never give one session the same P), and its
// opening, events and end are numbered by the cluster like any event.
// 0: Redis cannot be reached now (the answer passes unrecorded).
std::uint64_t open_shared_post_stream(zone_conf& zone, const mcp_session::session_key& key);
void append_post_events(zone_conf& zone, const mcp_session::session_key& key, std::uint64_t stream,
                        const mcp_session::relayed_batch& events);
void close_shared_post_stream(zone_conf& zone, const mcp_session::session_key& key, std::uint64_t stream,
                              std::uint64_t next_index, std::size_t unrecorded);
// The stream ended; `delivered`: its events up to there reached the client.
void close_shared_stream(zone_conf& zone, const mcp_session::session_key& key, std::uint64_t token,
                         std::uint64_t delivered);

// The cluster half: the subscriber link's channel replies, and its
// (re)connect, after which every channel with streams is joined again.
void on_events_channel_reply(cluster_node& node, const redisReply* reply);
void rejoin_events_channels(cluster_node& node);

// ngx_mcp_session_stream.cpp: the stream `token` may start sending;
// `delivered`: where the cluster's previous stream of the session stopped.
void shared_stream_ready(zone_conf& zone, std::uint64_t token, std::uint64_t delivered) noexcept;

}  // namespace mcp_ngx
