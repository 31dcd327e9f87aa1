#include "ngx_mcp_session_cluster_streams.hpp"

#include "ngx_mcp_session_cluster_node.hpp"
#include "ngx_mcp_session_cluster_store.hpp"
#include "ngx_mcp_session_events.hpp"

#include "mcp_session/shared_record.hpp"

extern "C" {
#include <hiredis/hiredis.h>
}

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace mcp_ngx {
namespace {

using mcp_session::session_key;
using mcp_session::shared_event;
using mcp_session::shared_message;

// Numbers an event and sends it on. The number is one past the newest in
// the session's Redis Stream, or past `floor` (the newest this node knows)
// if that is larger: a stream Redis lost (restart, expiry) never reuses
// ids clients may still hold. The stream lives as long as the session can.
// KEYS: events, record, tombstone. ARGV: maxlen, lifetime, channel, body,
// floor, known here ("1"), now.
constexpr std::string_view append_script = R"lua(
if redis.call('EXISTS', KEYS[3]) == 1 then return -2 end
local created = redis.call('HGET', KEYS[2], 'c')
if not created and ARGV[6] ~= '1' then return -1 end
local last = tonumber(ARGV[5])
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then
  local seq = tonumber(string.match(top[1][1], '^0%-(%d+)$') or '0')
  if seq > last then last = seq end
end
local id = last + 1
local message = 'E' .. id .. ' ' .. ARGV[4]
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. id, 'm', message)
local ttl = tonumber(ARGV[2])
if created then
  local left = tonumber(created) + ttl - tonumber(ARGV[7])
  if left > 0 and left < ttl then ttl = left end
end
redis.call('PEXPIRE', KEYS[1], math.floor(ttl))
redis.call('PUBLISH', ARGV[3], message)
return id
)lua";

// A stream opened: "take" makes it the session's listener (announced on
// the channel, so the previous one ends wherever it is); "check" only
// reads (after a reconnect). Both return the listener, where the previous
// stream stopped, and the newest events, in one atomic step: whatever is
// numbered later comes on the channel, already joined.
// KEYS: listener, events. ARGV: name, channel, lifetime, count, mode.
constexpr std::string_view open_script = R"lua(
if ARGV[5] == 'take' then
  redis.call('HSET', KEYS[1], 'w', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PUBLISH', ARGV[2], 'L' .. ARGV[1])
end
local held = redis.call('HMGET', KEYS[1], 'w', 'd')
return {held[1] or '', held[2] or '0', redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[4])}
)lua";

// A stream ended having delivered up to ARGV[1]: a GET without
// Last-Event-ID on any node starts after it; not for a session that ended
// (its stream ends after the end removed the key). KEYS: listener,
// tombstone. ARGV: id, lifetime.
constexpr std::string_view delivered_script = R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local d = tonumber(redis.call('HGET', KEYS[1], 'd') or '0') or 0
if tonumber(ARGV[1]) > d then redis.call('HSET', KEYS[1], 'd', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua";

std::string lifetime_of(const cluster_node& node) { return std::to_string(node.zone.policy.max_lifetime_ms); }

events_channel* channel_named(cluster_node& node, const std::string& name)
{
    const auto found = node.channels.find(name);
    return found == node.channels.end() ? nullptr : &found->second;
}

shared_listener* listener_of(events_channel& channel, std::uint64_t token)
{
    for (shared_listener& l : channel.listeners) {
        if (l.token == token) {
            return &l;
        }
    }
    return nullptr;
}

void log_malformed(cluster_node& node, const char* what)
{
    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0, "mcp_session %s: ignored a malformed %s", node.subscriber.label().c_str(),
                  what);
    count_shared(node.zone, &mcp_session::zone_counters::shared_malformed);
}

// One event from the channel or the Redis Stream into this node's ring.
// Returns its id (0: not one).
std::uint64_t receive(cluster_node& node, const session_key& key, std::string_view text, bool in_order)
{
    const shared_message message = mcp_session::decode_shared_message(text);
    if (message.what != shared_message::type::event) {
        log_malformed(node, "stream entry");
        return 0;
    }
    (void)event_store(node.zone).mirror(key, message.event, now_ms(), in_order);
    return message.event.id;
}

// XREVRANGE's reply, newest first: [[id, [field, value, ...]], ...].
// Returns the newest id it held (0: none).
std::uint64_t receive_entries(cluster_node& node, const session_key& key, const redisReply* entries)
{
    if (entries == nullptr || entries->type != REDIS_REPLY_ARRAY) {
        return 0;
    }
    std::uint64_t newest = 0;
    for (std::size_t i = entries->elements; i-- > 0;) {
        const redisReply* entry = entries->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING ||
            entry->element[1]->type != REDIS_REPLY_ARRAY || entry->element[1]->elements != 2 ||
            entry->element[1]->element[1]->type != REDIS_REPLY_STRING) {
            log_malformed(node, "stream entry");
            continue;
        }
        const redisReply* value = entry->element[1]->element[1];
        const std::uint64_t id = receive(node, key, std::string_view(value->str, value->len), false);
        if (id != 0 && id == mcp_session::shared_entry_id(std::string_view(entry->element[0]->str, entry->element[0]->len))) {
            newest = std::max(newest, id);
        }
    }
    return newest;
}

std::uint64_t number_of(const redisReply* reply)
{
    if (reply == nullptr) {
        return 0;
    }
    if (reply->type == REDIS_REPLY_INTEGER) {
        return reply->integer > 0 ? static_cast<std::uint64_t>(reply->integer) : 0;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        return 0;
    }
    char text[24] = {};
    if (reply->len == 0 || reply->len >= sizeof(text)) {
        return 0;
    }
    std::memcpy(text, reply->str, reply->len);
    char* end = nullptr;
    const unsigned long long n = std::strtoull(text, &end, 10);
    return end == text + reply->len ? n : 0;
}

// OPEN's answer for one listener: catch up, then (take) let the stream start.
void on_opened(cluster_node& node, const std::string& channel_name, std::uint64_t token, const redisReply* reply)
{
    events_channel* channel = channel_named(node, channel_name);
    shared_listener* listener = channel == nullptr ? nullptr : listener_of(*channel, token);
    if (listener == nullptr) {
        return;  // the stream ended meanwhile
    }
    const session_key key = channel->key;
    zone_conf& zone = node.zone;
    const bool first = !listener->opened;
    if (is_error(reply) || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        if (first) {
            shared_stream_ready(zone, token, 0);  // this node's ring alone
        }
        return;
    }
    listener->opened = true;
    const std::string holder = text_of(reply->element[0]);
    const std::uint64_t delivered = number_of(reply->element[1]);
    const std::uint64_t newest = receive_entries(node, key, reply->element[2]);
    // What Redis no longer holds up to its newest will not come.
    if (newest != 0) {
        event_store(zone).settle_mirror(key, newest);
    }
    if (first) {
        shared_stream_ready(zone, token, delivered);  // may end the stream, and the listener with it
    } else if (listener->takes && !holder.empty() && holder != listener->name) {
        event_store(zone).end_listener(key, token);  // a GET elsewhere took over while the link was down
    }
}

// `take`: the listener claims the session's stream; else it reads (a
// POST stream's resume, or a recheck after the link came back).
void send_open(cluster_node& node, const std::string& channel_name, events_channel& channel, shared_listener& listener,
               bool take)
{
    const std::string& prefix = prefix_of(node);
    cluster_node* n = &node;
    const std::uint64_t token = listener.token;
    run_script(node, node.open,
               {mcp_session::shared_listener_key(prefix, channel.key), mcp_session::shared_events_key(prefix, channel.key)},
               {listener.name, channel_name, lifetime_of(node), std::to_string(node.zone.ring_capacity),
                take ? "take" : "check"},
               [n, channel_name, token](const redisReply* reply) {
                   if (!cluster_leaving()) {
                       on_opened(*n, channel_name, token, reply);
                   }
               });
}

void join(cluster_node& node, const std::string& name, events_channel& channel)
{
    if (node.subscriber.join(name)) {
        channel.want = true;
        ++channel.replies_due;
    }
}

// A listener announced itself on the channel.
void on_listener_message(cluster_node& node, events_channel& channel, std::string_view name)
{
    for (shared_listener& l : channel.listeners) {
        if (!l.takes) {
            continue;  // a POST stream's resume: no GET takes it over from elsewhere
        }
        if (l.name == name) {
            l.seen_own = true;
        } else if (l.seen_own) {
            // Announced after this one: a newer GET, here or on another node.
            event_store(node.zone).end_listener(channel.key, l.token);
        }
    }
}

}  // namespace

bool shares_events(const zone_conf& zone) { return zone.cluster != nullptr; }

void prepare_shared_streams(cluster_node& node)
{
    node.append = {append_script, {}};
    node.open = {open_script, {}};
    node.delivered = {delivered_script, {}};
    std::random_device random;
    char name[24];
    std::snprintf(name, sizeof(name), "%08x%08x", random(), random());
    node.worker_name = name;
    // Below 2^62, so P.k stays far from the largest id a client may send.
    node.post_stream_base = (std::uint64_t{random() & 0x3fffffffU} + 1) << 32;
    cluster_node* n = &node;
    node.subscriber.on_channel_reply = [n](const redisReply* reply) { on_events_channel_reply(*n, reply); };
}

void append_shared_event(zone_conf& zone, const session_key& key, const shared_event& event, bool known_here,
                         numbered_handler numbered)
{
    cluster_node* node = zone.cluster;
    if (node == nullptr || !node->commands.ready()) {
        if (numbered) {
            numbered(append_unavailable);
        }
        return;
    }
    const std::string& prefix = prefix_of(*node);
    const std::uint64_t floor = event_store(zone).newest_event(key);
    run_script(*node, node->append,
               {mcp_session::shared_events_key(prefix, key), mcp_session::shared_session_key(prefix, key),
                mcp_session::shared_tombstone_key(prefix, key)},
               {std::to_string(zone.ring_capacity), lifetime_of(*node), mcp_session::shared_events_channel(prefix, key),
                mcp_session::encode_shared_event_body(event), std::to_string(floor), known_here ? "1" : "0",
                std::to_string(now_ms())},
               [z = &zone, key, numbered = std::move(numbered)](const redisReply* reply) {
                   if (cluster_leaving()) {
                       return;
                   }
                   const bool ok = reply != nullptr && reply->type == REDIS_REPLY_INTEGER && reply->integer != 0;
                   if (ok && reply->integer > 0) {
                       event_store(*z).note_cluster_id(key, static_cast<std::uint64_t>(reply->integer));
                   }
                   if (numbered) {
                       numbered(ok ? reply->integer : append_unavailable);
                   }
               });
}

void find_by_backend_id(zone_conf& zone, std::string_view backend_id,
                        std::function<void(std::optional<session_key>)> found)
{
    cluster_node* node = zone.cluster;
    if (node == nullptr || !node->commands.ready() ||
        !node->commands.command({"GET", mcp_session::shared_backend_index_key(prefix_of(*node), backend_id)},
                                [found](const redisReply* reply) {
                                    if (cluster_leaving()) {
                                        return;
                                    }
                                    const bool text = reply != nullptr && reply->type == REDIS_REPLY_STRING;
                                    found(text ? mcp_session::key_from_shared_token(text_of(reply)) : std::nullopt);
                                })) {
        found(std::nullopt);
    }
}

void append_backend_messages(zone_conf& zone, const session_key& key, const std::vector<std::string>& messages)
{
    zone_conf* z = &zone;
    for (const std::string& message : messages) {
        shared_event event;
        event.payload = message;
        append_shared_event(zone, key, event, true, [z](std::int64_t id) {
            count_shared(*z, id > 0 ? &mcp_session::zone_counters::backend_stream_events
                                    : &mcp_session::zone_counters::backend_stream_events_unrecorded);
        });
    }
}

std::uint64_t open_shared_post_stream(zone_conf& zone, const session_key& key)
{
    cluster_node* node = zone.cluster;
    if (node == nullptr || !node->commands.ready()) {
        return 0;
    }
    const std::uint64_t stream = node->post_stream_base + ++node->post_streams_made;
    shared_event opened;
    opened.kind = mcp_session::event_kind::init;
    opened.post_stream = stream;
    append_shared_event(zone, key, opened, true, {});
    count_shared(zone, &mcp_session::zone_counters::post_streams_recorded);
    return stream;
}

void append_post_events(zone_conf& zone, const session_key& key, std::uint64_t stream,
                        const mcp_session::relayed_batch& events)
{
    zone_conf* z = &zone;
    for (const mcp_session::relayed_event& e : events) {
        if (e.index > UINT32_MAX) {
            count_shared(zone, &mcp_session::zone_counters::post_events_unrecorded);
            continue;
        }
        shared_event event;
        event.post_stream = stream;
        event.post_index = static_cast<std::uint32_t>(e.index);
        event.flags = mcp_session::shared_flag_framed | (e.response ? mcp_session::shared_flag_response : 0);
        event.payload = e.fields;
        append_shared_event(zone, key, event, true, [z](std::int64_t id) {
            count_shared(*z, id > 0 ? &mcp_session::zone_counters::post_events_recorded
                                    : &mcp_session::zone_counters::post_events_unrecorded);
        });
    }
}

void close_shared_post_stream(zone_conf& zone, const session_key& key, std::uint64_t stream, std::uint64_t next_index,
                              std::size_t unrecorded)
{
    if (unrecorded > 0) {
        count_shared(zone, &mcp_session::zone_counters::post_events_unrecorded, unrecorded);
    }
    shared_event closed;
    closed.kind = mcp_session::event_kind::init;
    closed.post_stream = stream;
    closed.post_index = static_cast<std::uint32_t>(std::min<std::uint64_t>(next_index, UINT32_MAX));
    closed.flags = mcp_session::shared_flag_closed;
    append_shared_event(zone, key, closed, true, {});
}

bool open_shared_stream(zone_conf& zone, const session_key& key, std::uint64_t token, bool takes)
{
    cluster_node* node = zone.cluster;
    if (node == nullptr) {
        return false;
    }
    const std::string name = mcp_session::shared_events_channel(prefix_of(*node), key);
    events_channel& channel = node->channels[name];
    channel.key = key;
    channel.listeners.push_back({token, node->worker_name + ":" + std::to_string(token), takes, false, false, false});
    if (!node->commands.ready() || !node->subscriber.ready()) {
        // The stream goes on with this node's ring; the subscriber's
        // reconnect joins the channel and catches its ring up.
        return false;
    }
    if (channel.joined()) {
        send_open(*node, name, channel, channel.listeners.back(), takes);
    } else if (!channel.want) {
        join(*node, name, channel);
        return channel.want;
    }
    return true;  // sent once the channel is joined
}

void close_shared_stream(zone_conf& zone, const session_key& key, std::uint64_t token, std::uint64_t delivered)
{
    cluster_node* node = zone.cluster;
    if (node == nullptr) {
        return;
    }
    const std::string& prefix = prefix_of(*node);
    const std::string name = mcp_session::shared_events_channel(prefix, key);
    events_channel* channel = channel_named(*node, name);
    if (channel == nullptr) {
        return;
    }
    auto& listeners = channel->listeners;
    const auto gone = std::remove_if(listeners.begin(), listeners.end(),
                                     [token](const shared_listener& l) { return l.token == token; });
    if (gone == listeners.end()) {
        return;
    }
    listeners.erase(gone, listeners.end());
    if (delivered > 0 && node->commands.ready()) {
        run_script(*node, node->delivered,
                   {mcp_session::shared_listener_key(prefix, key), mcp_session::shared_tombstone_key(prefix, key)},
                   {std::to_string(delivered), lifetime_of(*node)}, {});
    }
    if (!listeners.empty()) {
        return;
    }
    if (channel->want && node->subscriber.leave(name)) {
        channel->want = false;
        ++channel->replies_due;
    }
    if (channel->replies_due == 0) {
        node->channels.erase(name);
    }
}

void on_events_channel_reply(cluster_node& node, const redisReply* reply)
{
    if (reply == nullptr) {
        return;  // the link went: rejoin_events_channels starts over
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        return;
    }
    const std::string_view type(reply->element[0]->str, reply->element[0]->len);
    const std::string name(reply->element[1]->str, reply->element[1]->len);
    events_channel* channel = channel_named(node, name);
    if (channel == nullptr) {
        return;
    }
    if (type == "subscribe" || type == "unsubscribe") {
        channel->replies_due -= channel->replies_due > 0 ? 1 : 0;
        if (channel->joined()) {
            // A failed send answers at once, which may end a stream and
            // change the listeners: each is looked up again.
            std::vector<std::uint64_t> due;
            for (const shared_listener& l : channel->listeners) {
                if (!l.opened || l.recheck) {
                    due.push_back(l.token);
                }
            }
            for (const std::uint64_t token : due) {
                events_channel* still = channel_named(node, name);
                shared_listener* l = still == nullptr ? nullptr : listener_of(*still, token);
                if (l != nullptr) {
                    l->recheck = false;
                    send_open(node, name, *still, *l, !l->opened && l->takes);
                }
            }
        } else if (!channel->want && channel->replies_due == 0 && channel->listeners.empty()) {
            node.channels.erase(name);
        }
        return;
    }
    const redisReply* payload = reply->element[2];
    if (type != "message" || payload->type != REDIS_REPLY_STRING) {
        return;
    }
    const std::string_view text(payload->str, payload->len);
    if (!text.empty() && text[0] == 'L') {
        const shared_message message = mcp_session::decode_shared_message(text);
        if (message.what != shared_message::type::listener) {
            log_malformed(node, "listener message");
            return;
        }
        on_listener_message(node, *channel, message.listener);
        return;
    }
    // After this worker's catch-up, the channel alone brings events, in
    // the order Redis numbered them: one it skipped is not coming.
    const bool caught_up = std::any_of(channel->listeners.begin(), channel->listeners.end(),
                                       [](const shared_listener& l) { return l.opened && !l.recheck; });
    (void)receive(node, channel->key, text, caught_up);
}

void rejoin_events_channels(cluster_node& node)
{
    for (auto it = node.channels.begin(); it != node.channels.end();) {
        events_channel& channel = it->second;
        channel.replies_due = 0;
        channel.want = false;
        if (channel.listeners.empty()) {
            it = node.channels.erase(it);
            continue;
        }
        for (shared_listener& l : channel.listeners) {
            l.recheck = l.opened;
        }
        join(node, it->first, channel);
        ++it;
    }
}

}  // namespace mcp_ngx
