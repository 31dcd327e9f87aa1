// What the status endpoint reports about a zone, and its two formats.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace mcp_session {

struct zone_counters {
    std::uint64_t created = 0;           // sessions recorded (learned or issued)
    std::uint64_t validated = 0;         // requests that named a live session
    std::uint64_t rejected_unknown = 0;  // requests answered 404 for an unknown or empty id
    std::uint64_t expired_lazily = 0;    // expired sessions found (and removed) by a lookup
    std::uint64_t expired_swept = 0;     // expired sessions removed by the sweep or before an insert
    std::uint64_t evicted = 0;           // live sessions evicted because the zone was full (both classes)
    std::uint64_t evicted_unused = 0;    // ... of them never named by a request after their creating one
    std::uint64_t evicted_established = 0;  // ... of them that had been (evicted only when no unused one was left)
    std::uint64_t deleted = 0;           // sessions ended by DELETE (losses are counted apart below)
    std::uint64_t events_published = 0;  // events put into rings (init, message, progress)
    std::uint64_t events_replayed = 0;   // events sent from the ring on (re)connect
    std::uint64_t lagged_notices = 0;
    std::uint64_t heartbeats = 0;
    std::uint64_t rings_allocated = 0;  // event rings made (a session's first event or stream)
    std::uint64_t rings_freed = 0;      // rings given back: session ended, or its stream closed holding no message
    std::uint64_t sessions_no_room = 0;  // sessions not stored: no room after a bounded few evictions
    std::uint64_t streams_no_room = 0;   // stream GETs answered 503: no room for the session's ring
    std::uint64_t publish_no_room = 0;   // published messages answered 503: no room without evicting a live session
    std::uint64_t markers_no_room = 0;   // init and heartbeat markers not buffered for want of room
    std::uint64_t post_streams_recorded = 0;    // backend SSE answers to POSTs recorded in rings
    std::uint64_t post_streams_unrecorded = 0;  // ... passed on unrecorded (no room, too many at once)
    std::uint64_t post_events_recorded = 0;     // events of POST streams put into rings
    std::uint64_t post_events_unrecorded = 0;   // ... passed on but not recorded (too large, no room)
    std::uint64_t post_stream_resumes = 0;      // GETs resuming a POST stream
    std::uint64_t sessions_replica_lost = 0;    // ended: their pinned upstream server was gone
    std::uint64_t sessions_backend_lost = 0;    // ended: their backend said it no longer knows them
    std::uint64_t sessions_healed = 0;          // mcp_session_heal made them a new backend session
    std::uint64_t heals_failed = 0;             // ... tried and failed: the session ended (counted as lost too)
    std::uint64_t backend_streams_opened = 0;   // GETs nginx opened for a backend's own stream (reopens too)
    std::uint64_t backend_stream_events = 0;    // messages of those streams recorded in rings
    std::uint64_t backend_stream_events_unrecorded = 0;  // ... dropped: too large, or no room
    // Zones with redis= (several nginx nodes sharing sessions):
    std::uint64_t shared_lookups = 0;      // sessions the zone did not hold, looked up in Redis
    std::uint64_t shared_adopted = 0;      // ... found there and cached in the zone
    std::uint64_t shared_absent = 0;       // ... not there, or expired (answered 404)
    std::uint64_t shared_unavailable = 0;  // requests answered 503: Redis could not be asked
    std::uint64_t shared_malformed = 0;    // records under the prefix ignored as malformed
    std::uint64_t shared_remote_ends = 0;  // sessions ended here because another node ended them
    std::uint64_t shared_events_mirrored = 0;  // events numbered by the cluster received into rings here
    std::uint64_t shared_takeovers = 0;    // streams here ended because a GET on another node took over
    std::uint64_t redis_round_trips = 0;   // commands answered by Redis, all workers
    std::uint64_t redis_errors = 0;        // error replies, timeouts and lost connections
};

// Sessions pinned to one upstream server (mcp_session_sticky), by the
// address nginx names the server with.
inline constexpr std::size_t max_status_upstreams = 255;  // a session keeps its slot in one byte
inline constexpr std::size_t max_upstream_name = 119;

struct upstream_count {
    std::uint64_t sessions = 0;
    std::uint8_t size = 0;
    char name[max_upstream_name] = {};
    std::string_view name_view() const { return {name, size}; }
};

struct zone_status {
    std::string zone;
    std::uint64_t size = 0;        // bytes of shared memory
    std::uint64_t bytes_used = 0;  // allocated from the slab (pages in use)
    std::uint64_t bytes_free = 0;
    std::uint64_t sessions = 0;
    std::uint64_t sessions_with_ring = 0;
    std::uint64_t open_streams = 0;
    zone_counters counters;
    // redis=: whether the answering worker's link to Redis is ready
    // (-1: the zone has no redis=).
    int redis_up = -1;
    std::size_t upstreams = 0;  // used entries of upstream_sessions
    std::array<upstream_count, max_status_upstreams> upstream_sessions{};
};

std::string status_json(const zone_status& status);

// A label value escaped for the exposition format (backslash, quote, newline).
std::string prometheus_label_value(std::string_view raw);

// Prometheus text exposition 0.0.4, one `zone` label per sample.
std::string status_prometheus(const zone_status& status);

inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace mcp_session
