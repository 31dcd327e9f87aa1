// One connection to Redis on nginx's event loop: hiredis' asynchronous
// API with its descriptor registered through ngx_get_connection, so the
// worker never blocks on Redis. The link reconnects on its own (backoff
// 100 ms doubling to 5 s), bounds every command by a timeout (a command
// not answered in time takes the connection down: Redis answers in order,
// so everything behind it would wait as long), and says once when Redis
// went away and once when it is back. Knows nothing about sessions.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

struct redisAsyncContext;
struct redisReply;

namespace mcp_ngx {

struct redis_event_glue;

struct redis_settings {
    std::string host;       // empty with a unix socket
    int port = 6379;
    std::string unix_path;  // redis=unix:/path
    std::string password;   // redis_password=; empty: no AUTH
    int database = 0;       // redis_database=
    ngx_msec_t timeout = 1000;  // redis_timeout=: connect and every command
    std::string prefix;     // redis_prefix=
};

class redis_link {
public:
    // `reply` is null when the command failed: link down, timed out, or
    // the worker is leaving. Never called from inside command().
    using reply_handler = std::function<void(const redisReply* reply)>;

    redis_link(const redis_settings& settings, std::string label);
    ~redis_link();
    redis_link(const redis_link&) = delete;
    redis_link& operator=(const redis_link&) = delete;

    // Runs once the connection is authenticated and on its database: the
    // owner's own setup, which calls mark_ready() when done.
    std::function<void()> on_connected;
    // Runs when a ready link goes down (the owner answers what waited).
    std::function<void()> on_down;
    // How loudly "unreachable" is logged ("is back" one level below it):
    // a second link to the same Redis says nothing the first has not.
    ngx_uint_t report_level = NGX_LOG_ERR;

    void start();
    // The worker is leaving: no reconnect; pending replies come as null.
    void stop();

    bool connected() const { return context_ != nullptr && connected_; }
    bool ready() const { return connected() && ready_; }
    void mark_ready();
    // The owner found the connection unusable (a setup step failed).
    void fail(const char* why);

    // Queues a command (sent with whatever else is queued in one write);
    // false when not connected (the handler is not called).
    bool command(const std::vector<std::string_view>& argv, reply_handler handler);
    // For a subscriber: the handler runs for every message of `channel`
    // (and the subscription's confirmation), until the link goes down.
    bool subscribe(std::string_view channel, reply_handler handler);
    // For a subscriber: channels joined and left at will, all answered
    // through on_channel_reply (messages, and the confirmations of both
    // with the channel's name in element[1]; null when the link goes).
    reply_handler on_channel_reply;
    bool join(std::string_view channel);
    bool leave(std::string_view channel);

    const redis_settings& settings() const { return settings_; }
    std::uint64_t round_trips() const { return round_trips_; }
    std::uint64_t errors() const { return errors_; }
    const std::string& label() const { return label_; }

private:
    friend struct redis_event_glue;

    struct pending {
        redis_link* link;
        reply_handler handler;
        bool subscription;
        bool kept = false;  // the link's own (channels_): hiredis may name it for many channels
    };

    static void on_reply(redisAsyncContext* context, void* reply, void* data) noexcept;
    static void on_connect(const redisAsyncContext* context, int status) noexcept;
    static void on_disconnect(const redisAsyncContext* context, int status) noexcept;
    static void on_reconnect_timer(ngx_event_t* ev) noexcept;
    static void on_command_timer(ngx_event_t* ev) noexcept;

    void connect();
    void handshake();
    void lost(const char* why);
    void schedule_reconnect();
    void arm_command_timer();
    bool queue(const std::vector<std::string_view>& argv, pending* p);

    redis_settings settings_;
    std::string label_;
    redisAsyncContext* context_ = nullptr;
    bool connected_ = false;
    bool ready_ = false;
    bool stopping_ = false;
    bool reported_down_ = false;  // "went away" logged; "is back" logged when ready again
    ngx_msec_t backoff_ = 0;
    ngx_event_t reconnect_timer_{};
    ngx_event_t command_timer_{};
    std::deque<ngx_msec_t> deadlines_;  // of the commands in flight, in order
    std::uint64_t round_trips_ = 0;
    std::uint64_t errors_ = 0;
    std::string last_problem_;
    pending channels_{this, {}, true, true};
};

}  // namespace mcp_ngx
