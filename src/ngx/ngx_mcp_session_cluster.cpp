#include "ngx_mcp_session_cluster.hpp"

#include "ngx_mcp_session_cluster_node.hpp"
#include "ngx_mcp_session_cluster_store.hpp"
#include "ngx_mcp_session_cluster_streams.hpp"
#include "ngx_mcp_session_redis_link.hpp"
#include "ngx_mcp_session_store.hpp"
#include "ngx_mcp_session_zone.hpp"

#include "mcp_session/expiry.hpp"
#include "mcp_session/shared_events.hpp"
#include "mcp_session/shared_record.hpp"

extern "C" {
#include <hiredis/hiredis.h>
}

#include <deque>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace mcp_ngx {
namespace {

using mcp_session::session_key;

// Writes a session's record, or merges this node's view into the one
// Redis holds, and sets its TTL to the nearer of its idle and lifetime
// deadlines. Refuses (-1) a session that ended: a node that missed the
// end cannot bring it back. 0: over by the cluster's clock (gone now).
// KEYS: record, tombstone. ARGV: now, idle_timeout, max_lifetime, mode
// ("save": this node's fields win; "sync": only a later access does, and
// a missing record is made), then the record's field/value pairs.
constexpr std::string_view sync_script = R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local now, idle, life = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local access
for i = 5, #ARGV - 1, 2 do if ARGV[i] == 'a' then access = ARGV[i + 1] end end
local old = redis.call('HMGET', KEYS[1], 'c', 'a')
local had = old[1] ~= false and old[1] ~= nil
if ARGV[4] == 'save' or not had then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
local kept = tonumber(old[2] or '')
if kept and kept > tonumber(access) then
  redis.call('HSET', KEYS[1], 'a', old[2])
elseif had then
  redis.call('HSET', KEYS[1], 'a', access)
end
local rec = redis.call('HMGET', KEYS[1], 'c', 'a')
local c, a = tonumber(rec[1] or ''), tonumber(rec[2] or '')
if not c or not a then return 0 end
local left = math.min(a + idle, c + life) - now
if left <= 0 then redis.call('DEL', KEYS[1]) return 0 end
redis.call('PEXPIRE', KEYS[1], math.floor(left))
return 1
)lua";

// Ends a session on every node. KEYS: record, tombstone, events,
// listener. ARGV: how long
// the tombstone lives (the lifetime: no copy can outlive it), the
// channel, the session's token.
constexpr std::string_view end_script = R"lua(
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
)lua";

// How often this worker's uses of local copies go to Redis.
constexpr ngx_msec_t flush_interval_ms = 1000;
// How long after a node found Redis empty an absent session is answered
// 503, not 404: the backoff's longest wait (5 s) and the re-seed itself.
constexpr ngx_msec_t reseed_window_ms = 10000;
// The re-seed sends a slice only while fewer commands than this wait.
constexpr std::size_t seed_window = 2048;
// Ends made while Redis was away, sent when it is back: beyond this many
// the oldest are dropped (those sessions then end elsewhere by expiry).
constexpr std::size_t max_unsent_ends = 65536;

// Exit_process: nothing may resume a request any more.
bool leaving = false;

std::string address_of(const redis_settings& s)
{
    return s.unix_path.empty() ? s.host + ":" + std::to_string(s.port) : "unix:" + s.unix_path;
}

}  // namespace

std::string text_of(const redisReply* reply)
{
    return reply != nullptr && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
               ? std::string(reply->str, reply->len)
               : std::string();
}

bool is_error(const redisReply* reply) { return reply == nullptr || reply->type == REDIS_REPLY_ERROR; }

cluster_node::cluster_node(zone_conf& z, const redis_settings& s)
    : zone(z),
      commands(s, label_for(z, s, "")),
      subscriber(s, label_for(z, s, " (subscriber)")),
      sync{sync_script, {}},
      end{end_script, {}}
{
}

std::string cluster_node::label_for(const zone_conf& z, const redis_settings& s, const char* role)
{
    return "zone \"" + std::string(to_view(z.name)) + "\": redis " + address_of(s) + role;
}

const std::string& prefix_of(const cluster_node& node) { return node.zone.redis->prefix; }

// EVALSHA, falling back to EVAL when Redis lost its script cache
// (restarted, SCRIPT FLUSH) or the load failed.
void run_script(cluster_node& node, script& s, const std::vector<std::string>& keys,
                const std::vector<std::string>& args, redis_link::reply_handler done)
{
    const std::string key_count = std::to_string(keys.size());
    const auto argv_with = [&](std::string_view verb, std::string_view body) {
        std::vector<std::string_view> argv{verb, body, key_count};
        argv.insert(argv.end(), keys.begin(), keys.end());
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
    };
    if (s.sha.empty()) {
        if (!node.commands.command(argv_with("EVAL", s.text), done) && done) {
            done(nullptr);
        }
        return;
    }
    // The fallback needs its own copies: the request's strings are gone by then.
    auto keys_copy = std::make_shared<std::vector<std::string>>(keys);
    auto args_copy = std::make_shared<std::vector<std::string>>(args);
    auto handler = std::make_shared<redis_link::reply_handler>(std::move(done));
    cluster_node* n = &node;
    script* sp = &s;
    const bool queued = node.commands.command(argv_with("EVALSHA", s.sha), [n, sp, keys_copy, args_copy,
                                                                              handler](const redisReply* reply) {
        if (reply != nullptr && reply->type == REDIS_REPLY_ERROR &&
            std::string_view(reply->str, reply->len).substr(0, 8) == "NOSCRIPT") {
            sp->sha.clear();
            run_script(*n, *sp, *keys_copy, *args_copy, std::move(*handler));
            return;
        }
        if (*handler) {
            (*handler)(reply);
        }
    });
    if (!queued && *handler) {
        (*handler)(nullptr);
    }
}

namespace {

std::vector<std::string> sync_args(const cluster_node& node, const mcp_session::shared_session& s, const char* mode)
{
    const mcp_session::expiry_policy& policy = node.zone.policy;
    std::vector<std::string> args{std::to_string(now_ms()), std::to_string(policy.idle_timeout_ms),
                                  std::to_string(policy.max_lifetime_ms), mode};
    for (auto& [name, value] : mcp_session::encode_shared_session(s)) {
        args.push_back(std::move(name));
        args.push_back(std::move(value));
    }
    return args;
}

// Writes (or merges) one session; Redis' verdict on it is applied here.
void sync_session(cluster_node& node, const session_key& key, const mcp_session::shared_session& s, const char* mode,
                  std::function<void()> answered = {})
{
    const std::string& prefix = prefix_of(node);
    zone_conf* zone = &node.zone;
    run_script(node, node.sync,
               {mcp_session::shared_session_key(prefix, key), mcp_session::shared_tombstone_key(prefix, key)},
               sync_args(node, s, mode), [zone, key, answered = std::move(answered)](const redisReply* reply) {
                   if (reply != nullptr && reply->type == REDIS_REPLY_INTEGER && reply->integer <= 0) {
                       remove_ended_elsewhere(*zone, key);  // ended on another node, or over
                   }
                   if (answered) {
                       answered();
                   }
               });
}

void flush_uses(cluster_node& node)
{
    if (!node.commands.ready()) {
        node.used.clear();  // the re-seed at reconnect carries every session's access
        return;
    }
    for (const std::string& token : node.used) {
        const auto key = mcp_session::key_from_shared_token(token);
        if (!key) {
            continue;
        }
        if (const auto view = shared_view_of(node.zone, *key)) {
            sync_session(node, *key, *view, "sync");
        }
    }
    node.used.clear();
}

// The link's counts go to the zone's counters in batches.
void count_link(cluster_node& node)
{
    const std::uint64_t trips = node.commands.round_trips() + node.subscriber.round_trips();
    const std::uint64_t errors = node.commands.errors() + node.subscriber.errors();
    if (trips != node.counted_round_trips) {
        count_shared(node.zone, &mcp_session::zone_counters::redis_round_trips, trips - node.counted_round_trips);
        node.counted_round_trips = trips;
    }
    if (errors != node.counted_errors) {
        count_shared(node.zone, &mcp_session::zone_counters::redis_errors, errors - node.counted_errors);
        node.counted_errors = errors;
    }
}

void on_flush_timer(ngx_event_t* ev) noexcept
{
    auto* node = static_cast<cluster_node*>(ev->data);
    try {
        flush_uses(*node);
        count_link(*node);
    } catch (...) {
        node->used.clear();  // no memory: those accesses reach Redis with the next use
    }
    if (!leaving && !ngx_exiting) {
        ngx_add_timer(ev, flush_interval_ms);
    }
}

// After every (re)connect the zone's sessions go to Redis again: a Redis
// that restarted empty learns them back, and one that kept them only
// takes later accesses. Sliced so the zone lock is held briefly.
void seed_slice(cluster_node& node)
{
    if (!node.seeding || !node.commands.ready()) {
        node.seeding = false;
        return;
    }
    if (node.in_flight < seed_window) {
        std::vector<std::pair<session_key, mcp_session::shared_session>> batch;
        const bool done = shared_slice(node.zone, node.seed_cursor, batch);
        cluster_node* n = &node;
        for (const auto& [key, view] : batch) {
            ++node.in_flight;
            sync_session(node, key, view, "sync", [n] { --n->in_flight; });
        }
        node.seeded += batch.size();
        if (done) {
            node.seeding = false;
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0, "mcp_session %s: sent %uz sessions of the zone",
                          node.commands.label().c_str(), node.seeded);
            return;
        }
    }
    ngx_add_timer(&node.seed_timer, 1);
}

void on_seed_timer(ngx_event_t* ev) noexcept
{
    auto* node = static_cast<cluster_node*>(ev->data);
    try {
        seed_slice(*node);
    } catch (...) {
        node->seeding = false;  // no memory: the next reconnect seeds again
    }
}

void start_seeding(cluster_node& node)
{
    node.seeding = true;
    node.seed_cursor = {};
    node.seeded = 0;
    if (!node.seed_timer.timer_set) {
        ngx_add_timer(&node.seed_timer, 1);
    }
}

// The cluster's binding key: the first node to ask proposes its own (a
// node that knew one proposes that, so a Redis that lost it gets the same
// one back); every node then uses what Redis holds.
void agree_binding_key(cluster_node& node, std::function<void()> then)
{
    std::uint64_t known = 0;
    const bool had = session_store(node.zone).cluster_binding_key(&known);
    const std::string name = mcp_session::shared_binding_key_name(prefix_of(node));
    const std::string proposal = mcp_session::shared_binding_key_text(had ? known : node.zone.shared->hash_seed);
    cluster_node* n = &node;
    // Winning the SET means Redis had no key: it is new or came back
    // empty. For a re-seed's time, an absent session is not a proof.
    node.commands.command({"SET", name, proposal, "NX"}, [n](const redisReply* reply) {
        if (reply != nullptr && reply->type == REDIS_REPLY_STATUS) {
            n->commands.command({"SET", mcp_session::shared_reseeding_key_name(prefix_of(*n)), "1", "PX",
                                 std::to_string(reseed_window_ms)},
                                {});
        }
    });
    node.commands.command({"GET", name}, [n, had, known, then = std::move(then)](const redisReply* reply) {
        if (is_error(reply)) {
            n->commands.fail("reading the binding key failed");
            return;
        }
        const auto agreed = mcp_session::parse_shared_binding_key(text_of(reply));
        if (!agreed) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "mcp_session %s: the binding key in Redis is malformed; ignored (bound sessions stay "
                          "this node's)",
                          n->commands.label().c_str());
            count_shared(n->zone, &mcp_session::zone_counters::shared_malformed);
        } else if (had && *agreed != known) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "mcp_session %s: Redis holds another binding key than this zone's; bound sessions "
                          "stay this node's",
                          n->commands.label().c_str());
        } else if (!had) {
            learn_cluster_key(n->zone, *agreed);
        }
        then();
    });
}

void send_end(cluster_node& node, const std::string& token)
{
    const auto key = mcp_session::key_from_shared_token(token);
    if (!key) {
        return;
    }
    const std::string& prefix = prefix_of(node);
    run_script(node, node.end,
               {mcp_session::shared_session_key(prefix, *key), mcp_session::shared_tombstone_key(prefix, *key),
                mcp_session::shared_events_key(prefix, *key), mcp_session::shared_listener_key(prefix, *key)},
               {std::to_string(node.zone.policy.max_lifetime_ms), mcp_session::shared_end_channel(prefix), token}, {});
}

void on_commands_connected(cluster_node& node)
{
    cluster_node* n = &node;
    for (script* s : {&node.sync, &node.end, &node.append, &node.open, &node.delivered}) {
        node.commands.command({"SCRIPT", "LOAD", s->text}, [s](const redisReply* reply) {
            s->sha = reply != nullptr && reply->type == REDIS_REPLY_STRING ? text_of(reply) : std::string();
        });
    }
    agree_binding_key(node, [n] {
        n->commands.mark_ready();
        // Ends first: the re-seed must not find those sessions alive.
        while (!n->unsent_ends.empty()) {
            send_end(*n, n->unsent_ends.front());
            n->unsent_ends.pop_front();
        }
        start_seeding(*n);
    });
}

// Every node's ends arrive here, this node's own too (a no-op then).
void on_end_message(cluster_node& node, const redisReply* reply)
{
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        return;
    }
    const redisReply* kind = reply->element[0];
    const redisReply* payload = reply->element[2];
    const std::string type = text_of(kind);
    if (type == "subscribe") {
        node.subscriber.mark_ready();
        return;
    }
    if (type != "message" || payload->type != REDIS_REPLY_STRING) {
        return;
    }
    const auto key = mcp_session::key_from_shared_token(std::string_view(payload->str, payload->len));
    if (!key) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0, "mcp_session %s: ignored a malformed end message",
                      node.subscriber.label().c_str());
        count_shared(node.zone, &mcp_session::zone_counters::shared_malformed);
        return;
    }
    remove_ended_elsewhere(node.zone, *key);
}

std::vector<cluster_node*> nodes;

// One lookup of a request: three pipelined commands (the record, its
// tombstone, the re-seed mark). Freed by whichever of the last reply and
// the request's end comes second.
struct lookup_ticket {
    ngx_http_request_t* request;
    zone_conf* zone;
    session_key key;
    cluster_node* node;
    bool answered = false;
    int replies_due = 0;
    bool waiting_counted = false;  // in node->lookups_waiting
    shared_lookup verdict = shared_lookup::unavailable;  // from the record
    bool ended = false;      // a tombstone: absent for certain
    bool reseeding = true;   // until Redis says otherwise: absent may mean "not sent yet"
};

void on_request_gone(void* data) noexcept
{
    auto* ticket = static_cast<lookup_ticket*>(data);
    if (ticket->answered) {
        delete ticket;
    } else {
        ticket->request = nullptr;  // the answer finds no request
    }
}

shared_lookup judge_record(lookup_ticket& ticket, const redisReply* reply)
{
    zone_conf& zone = *ticket.zone;
    // Something else than a hash under the session's key (another
    // program's value under our prefix): not a session, and never will be.
    static constexpr std::string_view wrong_type = "WRONGTYPE";
    if (reply != nullptr && reply->type == REDIS_REPLY_ERROR &&
        std::string_view(reply->str, reply->len).substr(0, wrong_type.size()) == wrong_type) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "mcp_session zone \"%V\": ignored a value in Redis under a session key that is not a hash",
                      &zone.name);
        count_shared(zone, &mcp_session::zone_counters::shared_malformed);
        count_shared(zone, &mcp_session::zone_counters::shared_absent);
        return shared_lookup::absent;
    }
    if (is_error(reply) || reply->type != REDIS_REPLY_ARRAY) {
        return shared_lookup::unavailable;
    }
    std::vector<std::string_view> fields;
    fields.reserve(reply->elements);
    for (std::size_t i = 0; i < reply->elements; ++i) {
        const redisReply* e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING) {
            fields.clear();
            fields.emplace_back();  // an odd list: malformed
            break;
        }
        fields.emplace_back(e->str, e->len);
    }
    const mcp_session::shared_decoding d = mcp_session::decode_shared_session(fields);
    switch (d.result) {
    case mcp_session::shared_decoding::verdict::absent:
        count_shared(zone, &mcp_session::zone_counters::shared_absent);
        return shared_lookup::absent;
    case mcp_session::shared_decoding::verdict::malformed:
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "mcp_session zone \"%V\": ignored a malformed session record in Redis (%s)", &zone.name,
                      d.problem.c_str());
        count_shared(zone, &mcp_session::zone_counters::shared_malformed);
        count_shared(zone, &mcp_session::zone_counters::shared_absent);
        return shared_lookup::absent;
    case mcp_session::shared_decoding::verdict::valid:
        break;
    }
    const mcp_session::unix_ms now = now_ms();
    if (mcp_session::is_expired({d.session.created_ms, d.session.last_access_ms}, zone.policy, now)) {
        count_shared(zone, &mcp_session::zone_counters::shared_absent);
        return shared_lookup::absent;
    }
    return adopt_shared(zone, ticket.key, d.session, now) == adoption::no_room ? shared_lookup::unavailable
                                                                                : shared_lookup::adopted;
}

enum class lookup_part { record, tombstone, reseeding };

bool integer_is(const redisReply* reply, long long value)
{
    return reply != nullptr && reply->type == REDIS_REPLY_INTEGER && reply->integer == value;
}

// The request goes on, with what the three replies said.
void finish_lookup(lookup_ticket* ticket)
{
    if (ticket->waiting_counted) {
        --ticket->node->lookups_waiting;
    }
    if (ticket->request == nullptr) {
        delete ticket;  // the request ended while Redis answered (or it never waited)
        return;
    }
    ngx_http_request_t* r = ticket->request;
    ticket->answered = true;  // from here the request's cleanup frees it
    if (leaving) {
        return;  // the worker is going: the request goes with it
    }
    request_state* state = state_of(r);
    shared_lookup verdict = ticket->verdict;
    // Absent while the nodes re-seed a Redis that came back empty is not
    // an answer (the session may not have been sent yet); a tombstone is.
    if (verdict == shared_lookup::absent && ticket->reseeding && !ticket->ended) {
        verdict = shared_lookup::unavailable;
    }
    ngx_connection_t* c = r->connection;
    if (state != nullptr) {
        state->shared = verdict;
        state->resume_gate = true;
    }
    // The phases go on where the gate stopped (it judges again).
    r->main->count--;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}

void on_lookup_reply(lookup_ticket* ticket, lookup_part part, const redisReply* reply)
{
    switch (part) {
    case lookup_part::record:
        if (ticket->request != nullptr && !leaving) {
            try {
                ticket->verdict = judge_record(*ticket, reply);
            } catch (...) {
                ticket->verdict = shared_lookup::unavailable;
            }
        }
        break;
    case lookup_part::tombstone:
        ticket->ended = integer_is(reply, 1);
        break;
    case lookup_part::reseeding:
        ticket->reseeding = !integer_is(reply, 0);
        break;
    }
    if (--ticket->replies_due == 0) {
        finish_lookup(ticket);
    }
}

}  // namespace

ngx_int_t start_clusters(ngx_cycle_t* cycle) noexcept
{
    leaving = false;
    try {
        for_each_zone(cycle, [](zone_conf& zone) {
            if (zone.redis == nullptr) {
                return;
            }
            auto* node = new cluster_node(zone, *zone.redis);
            nodes.push_back(node);
            zone.cluster = node;
            prepare_shared_streams(*node);
            node->commands.on_connected = [node] { on_commands_connected(*node); };
            node->subscriber.report_level = NGX_LOG_INFO;  // the command link reports the outage
            node->subscriber.on_connected = [node] {
                const std::string channel = mcp_session::shared_end_channel(prefix_of(*node));
                node->subscriber.subscribe(channel, [node](const redisReply* reply) { on_end_message(*node, reply); });
                rejoin_events_channels(*node);
            };
            for (ngx_event_t* ev : {&node->flush_timer, &node->seed_timer}) {
                ev->data = node;
                ev->log = ngx_cycle->log;
                ev->cancelable = 1;
            }
            node->flush_timer.handler = on_flush_timer;
            node->seed_timer.handler = on_seed_timer;
            node->commands.start();
            node->subscriber.start();
            ngx_add_timer(&node->flush_timer, flush_interval_ms);
        });
    } catch (...) {
        return NGX_ERROR;
    }
    return NGX_OK;
}

void stop_clusters(ngx_cycle_t*) noexcept
{
    leaving = true;
    for (cluster_node* node : nodes) {
        for (ngx_event_t* ev : {&node->flush_timer, &node->seed_timer}) {
            if (ev->timer_set) {
                ngx_del_timer(ev);
            }
        }
        node->commands.stop();
        node->subscriber.stop();
        node->zone.cluster = nullptr;
        delete node;
    }
    nodes.clear();
}

bool look_up_shared(ngx_http_request_t* r, request_state* state, const session_key& key)
{
    cluster_node* node = state->zone->cluster;
    if (node == nullptr || !node->commands.ready()) {
        return false;
    }
    // A flood of ids nobody made must not queue without bound behind a
    // slow Redis: past this many waiting requests the answer is 503.
    static constexpr std::size_t max_lookups_waiting = 4096;
    if (node->lookups_waiting >= max_lookups_waiting) {
        return false;
    }
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(r->pool, 0);
    if (cleanup == nullptr) {
        return false;
    }
    auto* ticket = new lookup_ticket{r, state->zone, key, node};
    const std::string& prefix = prefix_of(*node);
    const std::pair<lookup_part, std::vector<std::string>> commands[] = {
        {lookup_part::record, {"HGETALL", mcp_session::shared_session_key(prefix, key)}},
        {lookup_part::tombstone, {"EXISTS", mcp_session::shared_tombstone_key(prefix, key)}},
        {lookup_part::reseeding, {"EXISTS", mcp_session::shared_reseeding_key_name(prefix)}},
    };
    // All three go out in one write; their replies come in order.
    for (const auto& [part, argv] : commands) {
        const std::vector<std::string_view> args(argv.begin(), argv.end());
        ++ticket->replies_due;
        const lookup_part which = part;
        if (!node->commands.command(args, [ticket, which](const redisReply* reply) {
                on_lookup_reply(ticket, which, reply);
            })) {
            ticket->request = nullptr;  // nobody waits: the last queued reply frees it
            if (--ticket->replies_due == 0) {
                delete ticket;
            }
            return false;
        }
    }
    ticket->waiting_counted = true;
    ++node->lookups_waiting;
    cleanup->handler = on_request_gone;
    cleanup->data = ticket;
    count_shared(*state->zone, &mcp_session::zone_counters::shared_lookups);
    state->shared = shared_lookup::pending;
    // The request waits for the answer, like one reading its body.
    r->main->count++;
    r->write_event_handler = ngx_http_request_empty_handler;
    return true;
}

void note_shared_use(zone_conf& zone, const session_key& key)
{
    if (zone.cluster != nullptr) {
        zone.cluster->used.insert(mcp_session::shared_token(key));
    }
}

void share_session(zone_conf& zone, const session_key& key)
{
    cluster_node* node = zone.cluster;
    if (node == nullptr || !node->commands.ready()) {
        return;  // the re-seed at reconnect shares it
    }
    if (const auto view = shared_view_of(zone, key)) {
        sync_session(*node, key, *view, "save");
        if (!view->backend_id.empty()) {
            // Issue mode: any node finds the session by the backend's id
            // (a publish names it so); the entry outlives no session.
            node->commands.command({"SET", mcp_session::shared_backend_index_key(prefix_of(*node), view->backend_id),
                                    mcp_session::shared_token(key), "PX",
                                    std::to_string(zone.policy.max_lifetime_ms)},
                                   {});
        }
    }
}

void end_shared_session(zone_conf& zone, const session_key& key)
{
    cluster_node* node = zone.cluster;
    if (node == nullptr) {
        return;
    }
    std::string token = mcp_session::shared_token(key);
    if (node->commands.ready()) {
        send_end(*node, token);
        return;
    }
    if (node->unsent_ends.size() == max_unsent_ends) {
        node->unsent_ends.pop_front();
    }
    node->unsent_ends.push_back(std::move(token));
}

bool cluster_leaving() { return leaving; }

bool shared_link_up(const zone_conf& zone) { return zone.cluster != nullptr && zone.cluster->commands.ready(); }

}  // namespace mcp_ngx
