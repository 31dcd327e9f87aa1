#include "mcp_session/status.hpp"

#include <nlohmann/json.hpp>

namespace mcp_session {
namespace {

struct counter_field {
    const char* name;
    std::uint64_t zone_counters::*field;
    const char* help;
};

constexpr counter_field counter_fields[] = {
    {"created", &zone_counters::created, "Sessions recorded (learned from the backend or issued by nginx)."},
    {"validated", &zone_counters::validated, "Requests that named a live session."},
    {"rejected_unknown", &zone_counters::rejected_unknown, "Requests answered 404 for an unknown or empty session id."},
    {"expired_lazily", &zone_counters::expired_lazily, "Expired sessions found and removed by a lookup."},
    {"expired_swept", &zone_counters::expired_swept, "Expired sessions removed by the sweep or before an insert."},
    {"evicted", &zone_counters::evicted, "Live sessions evicted because the zone was full."},
    {"evicted_unused", &zone_counters::evicted_unused,
     "Evicted sessions that no request had named since the one that created them."},
    {"evicted_established", &zone_counters::evicted_established,
     "Evicted sessions that requests had named after their creation (evicted only when no unused one was left)."},
    {"deleted", &zone_counters::deleted, "Sessions ended by DELETE."},
    {"events_published", &zone_counters::events_published, "Events put into session rings (init, message, progress)."},
    {"events_replayed", &zone_counters::events_replayed, "Events sent from a ring when a stream (re)connected."},
    {"lagged_notices", &zone_counters::lagged_notices, "Lagged notices sent to streams that fell behind the ring."},
    {"heartbeats", &zone_counters::heartbeats, "Heartbeat events published."},
    {"rings_allocated", &zone_counters::rings_allocated, "Event rings allocated in the zone."},
    {"rings_freed", &zone_counters::rings_freed,
     "Event rings given back (the session ended, or its stream closed with no message buffered)."},
    {"sessions_no_room", &zone_counters::sessions_no_room,
     "Sessions not stored because a bounded few evictions found no room."},
    {"streams_no_room", &zone_counters::streams_no_room, "Stream requests answered 503: no room for the event ring."},
    {"publish_no_room", &zone_counters::publish_no_room,
     "Published messages answered 503: no room without evicting another live session."},
    {"markers_no_room", &zone_counters::markers_no_room, "Init and heartbeat markers not buffered for want of room."},
    {"post_streams_recorded", &zone_counters::post_streams_recorded,
     "Backend SSE answers to POSTs recorded in session rings."},
    {"post_streams_unrecorded", &zone_counters::post_streams_unrecorded,
     "Backend SSE answers to POSTs passed on unrecorded (no room, or too many of the session's at once)."},
    {"post_events_recorded", &zone_counters::post_events_recorded, "Events of POST streams recorded in rings."},
    {"post_events_unrecorded", &zone_counters::post_events_unrecorded,
     "Events of POST streams passed on but not recorded (larger than mcp_session_event_max_size, or no room)."},
    {"post_stream_resumes", &zone_counters::post_stream_resumes, "GET requests resuming a POST stream."},
    {"sessions_replica_lost", &zone_counters::sessions_replica_lost,
     "Sessions ended at the edge because their pinned upstream server was gone (mcp_session_sticky)."},
    {"sessions_backend_lost", &zone_counters::sessions_backend_lost,
     "Sessions ended at the edge because their backend answered that it no longer knows them."},
    {"sessions_healed", &zone_counters::sessions_healed,
     "Lost sessions that mcp_session_heal moved to a new backend session; the client saw no error."},
    {"heals_failed", &zone_counters::heals_failed,
     "Heals tried that failed (no replica made a new backend session); those sessions ended and count as lost."},
    {"backend_streams_opened", &zone_counters::backend_streams_opened,
     "GET requests nginx sent to hold a backend's own stream of a session (reopens included)."},
    {"backend_stream_events", &zone_counters::backend_stream_events,
     "Messages of backends' own streams recorded on their sessions' streams."},
    {"backend_stream_events_unrecorded", &zone_counters::backend_stream_events_unrecorded,
     "Messages of backends' own streams dropped (larger than mcp_session_event_max_size, or no room)."},
    {"shared_lookups", &zone_counters::shared_lookups,
     "Sessions the zone did not hold, looked up in Redis (redis=): local cache misses."},
    {"shared_adopted", &zone_counters::shared_adopted, "Sessions found in Redis and cached in the zone."},
    {"shared_absent", &zone_counters::shared_absent, "Sessions looked up in Redis and not found there (answered 404)."},
    {"shared_unavailable", &zone_counters::shared_unavailable,
     "Requests answered 503 because Redis could not be asked about their session."},
    {"shared_malformed", &zone_counters::shared_malformed, "Records under the Redis prefix ignored as malformed."},
    {"shared_remote_ends", &zone_counters::shared_remote_ends,
     "Sessions ended in this zone because another node ended them."},
    {"shared_events_mirrored", &zone_counters::shared_events_mirrored,
     "Events numbered in Redis and received into this zone's rings (cross-node deliveries included)."},
    {"shared_takeovers", &zone_counters::shared_takeovers,
     "Streams in this zone ended because a GET on another node took the session's stream over."},
    {"redis_round_trips", &zone_counters::redis_round_trips, "Commands answered by Redis, all workers."},
    {"redis_errors", &zone_counters::redis_errors, "Redis error replies, timeouts and lost connections."},
};

struct gauge_field {
    const char* name;
    std::uint64_t zone_status::*field;
    const char* help;
};

constexpr gauge_field gauge_fields[] = {
    {"size_bytes", &zone_status::size, "Size of the shared memory zone."},
    {"used_bytes", &zone_status::bytes_used, "Bytes of the zone in use."},
    {"free_bytes", &zone_status::bytes_free, "Bytes of the zone free."},
    {"sessions", &zone_status::sessions, "Live sessions in the zone."},
    {"sessions_with_ring", &zone_status::sessions_with_ring, "Sessions that have an event ring."},
    {"open_streams", &zone_status::open_streams, "Open SSE streams, all workers."},
};

}  // namespace

// Label values escape backslash, quote and newline (exposition format).
std::string prometheus_label_value(std::string_view raw)
{
    std::string out;
    for (const char c : raw) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string status_json(const zone_status& status)
{
    nlohmann::ordered_json body;
    body["zone"] = status.zone;
    body["size"] = status.size;
    body["bytes_used"] = status.bytes_used;
    body["bytes_free"] = status.bytes_free;
    body["sessions"] = status.sessions;
    body["sessions_with_ring"] = status.sessions_with_ring;
    body["open_streams"] = status.open_streams;
    nlohmann::ordered_json counters = nlohmann::ordered_json::object();
    for (const counter_field& f : counter_fields) {
        counters[f.name] = status.counters.*f.field;
    }
    body["counters"] = counters;
    if (status.redis_up >= 0) {
        body["redis"] = {{"link", status.redis_up == 1 ? "up" : "down"}};
    }
    nlohmann::ordered_json upstreams = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < status.upstreams && i < status.upstream_sessions.size(); ++i) {
        const upstream_count& u = status.upstream_sessions[i];
        upstreams[std::string(u.name_view())] = u.sessions;
    }
    body["upstreams"] = upstreams;
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string status_prometheus(const zone_status& status)
{
    const std::string label = "{zone=\"" + prometheus_label_value(status.zone) + "\"} ";
    std::string out;
    for (const gauge_field& g : gauge_fields) {
        const std::string name = std::string("mcp_session_zone_") + g.name;
        out += "# HELP " + name + " " + g.help + "\n# TYPE " + name + " gauge\n";
        out += name + label + std::to_string(status.*g.field) + "\n";
    }
    if (status.redis_up >= 0) {
        out += "# HELP mcp_session_redis_up Whether the answering worker's link to Redis is ready (redis=).\n"
               "# TYPE mcp_session_redis_up gauge\n";
        out += "mcp_session_redis_up" + label + std::to_string(status.redis_up) + "\n";
    }
    for (const counter_field& f : counter_fields) {
        const std::string name = std::string("mcp_session_") + f.name + "_total";
        out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " counter\n";
        out += name + label + std::to_string(status.counters.*f.field) + "\n";
    }
    out += "# HELP mcp_session_upstream_sessions Live sessions pinned to each upstream server (mcp_session_sticky).\n"
           "# TYPE mcp_session_upstream_sessions gauge\n";
    const std::string zone_label = "{zone=\"" + prometheus_label_value(status.zone) + "\",upstream=\"";
    for (std::size_t i = 0; i < status.upstreams && i < status.upstream_sessions.size(); ++i) {
        const upstream_count& u = status.upstream_sessions[i];
        out += "mcp_session_upstream_sessions" + zone_label + prometheus_label_value(u.name_view()) + "\"} " +
               std::to_string(u.sessions) + "\n";
    }
    return out;
}

}  // namespace mcp_session
