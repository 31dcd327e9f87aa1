// What one worker holds of a zone with redis= (the cluster's sessions in
// ngx_mcp_session_cluster.cpp, its streams in _cluster_streams.cpp): the
// two links, the scripts, and the state of both halves.
#pragma once

#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_redis_link.hpp"

#include "mcp_session/session_key.hpp"
#include "mcp_session/state_snapshot.hpp"

#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

struct redisReply;

namespace mcp_ngx {

struct script {
    std::string_view text;
    std::string sha;  // SCRIPT LOAD's answer; empty: not loaded (EVAL)
};

// One local stream of a session whose events the cluster shares.
struct shared_listener {
    std::uint64_t token = 0;  // its subscription in the zone
    std::string name;         // cluster-wide: this worker's name and the token
    bool takes = true;        // the standalone stream (a POST stream's resume only reads)
    bool opened = false;      // Redis made it the session's listener
    bool seen_own = false;    // its own announcement came back: later ones are newer GETs
    bool recheck = false;     // the link came back: catch up, and see whether it is still the listener
};

// A session's events channel as this worker's subscriber link has it.
struct events_channel {
    mcp_session::session_key key;
    std::vector<shared_listener> listeners;
    bool want = false;          // the last command sent was SUBSCRIBE
    std::size_t replies_due = 0;  // SUBSCRIBE / UNSUBSCRIBE not confirmed yet
    bool joined() const { return want && replies_due == 0; }
};

struct cluster_node {
    cluster_node(zone_conf& z, const redis_settings& s);
    static std::string label_for(const zone_conf& z, const redis_settings& s, const char* role);

    zone_conf& zone;
    redis_link commands;
    redis_link subscriber;
    script sync;
    script end;
    std::unordered_set<std::string> used;  // tokens of local copies used since the last flush
    std::deque<std::string> unsent_ends;   // tokens of sessions ended while Redis was away
    ngx_event_t flush_timer{};
    ngx_event_t seed_timer{};
    bool seeding = false;
    mcp_session::save_cursor seed_cursor;
    std::size_t seeded = 0;
    std::size_t in_flight = 0;  // re-seed commands not answered yet
    std::size_t lookups_waiting = 0;  // requests waiting for Redis in this worker
    std::uint64_t counted_round_trips = 0;
    std::uint64_t counted_errors = 0;

    // Streams (ngx_mcp_session_cluster_streams.cpp).
    script append;
    script open;
    script delivered;
    std::string worker_name;  // random per worker process: names its listeners
    std::uint64_t post_stream_base = 0;  // random, << 32: the POST streams this worker records are base + n
    std::uint32_t post_streams_made = 0;
    std::unordered_map<std::string, events_channel> channels;  // by channel name
};

const std::string& prefix_of(const cluster_node& node);
std::string text_of(const redisReply* reply);
bool is_error(const redisReply* reply);

// EVALSHA, falling back to EVAL when Redis lost its script cache.
void run_script(cluster_node& node, script& s, const std::vector<std::string>& keys,
                const std::vector<std::string>& args, redis_link::reply_handler done);

// exit_process has begun: nothing may resume a request any more.
bool cluster_leaving();

}  // namespace mcp_ngx
