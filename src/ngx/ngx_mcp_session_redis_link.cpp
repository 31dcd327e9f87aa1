#include "ngx_mcp_session_redis_link.hpp"

extern "C" {
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
}

#include <algorithm>
#include <memory>

namespace mcp_ngx {
namespace {

constexpr ngx_msec_t first_backoff_ms = 100;
constexpr ngx_msec_t max_backoff_ms = 5000;

// hiredis' event hooks: its descriptor is an nginx connection whose events
// hiredis switches on and off. Level-triggered, because hiredis reads at
// most 16 KB per call: what is left must wake the loop again.
void add_read(void* data)
{
    auto* c = static_cast<ngx_connection_t*>(data);
    if (!c->read->active) {
        ngx_add_event(c->read, NGX_READ_EVENT, 0);
    }
}

void del_read(void* data)
{
    auto* c = static_cast<ngx_connection_t*>(data);
    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}

void add_write(void* data)
{
    auto* c = static_cast<ngx_connection_t*>(data);
    if (!c->write->active) {
        ngx_add_event(c->write, NGX_WRITE_EVENT, 0);
    }
}

void del_write(void* data)
{
    auto* c = static_cast<ngx_connection_t*>(data);
    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}

// hiredis closes the descriptor itself right after this: the events are
// only forgotten (NGX_CLOSE_EVENT), the connection slot given back.
void cleanup(void* data)
{
    auto* c = static_cast<ngx_connection_t*>(data);
    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }
    for (ngx_event_t* ev : {c->read, c->write}) {
        if (ev->timer_set) {
            ngx_del_timer(ev);
        }
        if (ev->posted) {
            ngx_delete_posted_event(ev);
        }
    }
    ngx_free_connection(c);
    c->fd = static_cast<ngx_socket_t>(-1);
}

}  // namespace

// The connection's events call into hiredis; a read with c->close set is
// nginx telling an exiting worker to let go (ngx_close_idle_connections).
struct redis_event_glue {
    static void on_read(ngx_event_t* ev) noexcept
    {
        auto* c = static_cast<ngx_connection_t*>(ev->data);
        auto* link = static_cast<redis_link*>(c->data);
        if (c->close) {
            link->stop();
            return;
        }
        redisAsyncHandleRead(link->context_);
    }

    static void on_write(ngx_event_t* ev) noexcept
    {
        auto* c = static_cast<ngx_connection_t*>(ev->data);
        auto* link = static_cast<redis_link*>(c->data);
        redisAsyncHandleWrite(link->context_);
    }
};

redis_link::redis_link(const redis_settings& settings, std::string label)
    : settings_(settings), label_(std::move(label))
{
    for (ngx_event_t* ev : {&reconnect_timer_, &command_timer_}) {
        ev->data = this;
        ev->log = ngx_cycle->log;
        ev->cancelable = 1;  // never what keeps an exiting worker alive
    }
    reconnect_timer_.handler = on_reconnect_timer;
    command_timer_.handler = on_command_timer;
}

redis_link::~redis_link() { stop(); }

void redis_link::start()
{
    stopping_ = false;
    connect();
}

void redis_link::stop()
{
    stopping_ = true;
    ready_ = false;
    if (reconnect_timer_.timer_set) {
        ngx_del_timer(&reconnect_timer_);
    }
    if (command_timer_.timer_set) {
        ngx_del_timer(&command_timer_);
    }
    if (context_ != nullptr) {
        redisAsyncContext* context = context_;
        connected_ = false;
        context_ = nullptr;
        context->data = nullptr;  // on_disconnect finds no link: nothing reconnects
        redisAsyncFree(context);  // what waits gets a null reply
    }
    deadlines_.clear();
}

void redis_link::connect()
{
    if (stopping_ || context_ != nullptr) {
        return;
    }
    redisAsyncContext* context = settings_.unix_path.empty()
                                     ? redisAsyncConnect(settings_.host.c_str(), settings_.port)
                                     : redisAsyncConnectUnix(settings_.unix_path.c_str());
    if (context == nullptr) {
        lost("out of memory");
        return;
    }
    if (context->err != 0) {
        const std::string why = context->errstr;
        redisAsyncFree(context);
        lost(why.c_str());
        return;
    }
    ngx_connection_t* c = ngx_get_connection(context->c.fd, ngx_cycle->log);
    if (c == nullptr) {
        redisAsyncFree(context);  // its cleanup hook is not set yet: hiredis closes the socket
        lost("no free connection (worker_connections)");
        return;
    }
    c->data = this;
    c->idle = 1;  // an exiting worker "closes" idle connections: our cue to let go
    c->read->handler = redis_event_glue::on_read;
    c->write->handler = redis_event_glue::on_write;
    c->read->log = c->write->log = ngx_cycle->log;
    context->data = this;
    context->ev.data = c;
    context->ev.addRead = add_read;
    context->ev.delRead = del_read;
    context->ev.addWrite = add_write;
    context->ev.delWrite = del_write;
    context->ev.cleanup = cleanup;
    redisAsyncSetConnectCallback(context, on_connect);
    redisAsyncSetDisconnectCallback(context, on_disconnect);
    context_ = context;
    connected_ = false;
    // hiredis learns the connect finished at the first write event.
    add_write(c);
    deadlines_.assign(1, ngx_current_msec + settings_.timeout);  // the connect's own deadline
    arm_command_timer();
}

void redis_link::on_connect(const redisAsyncContext* context, int status) noexcept
{
    auto* link = static_cast<redis_link*>(context->data);
    if (link == nullptr) {
        return;
    }
    link->deadlines_.clear();
    if (status != REDIS_OK) {
        // hiredis frees the context after this returns.
        link->context_ = nullptr;
        link->lost(context->errstr);
        return;
    }
    link->connected_ = true;
    link->handshake();
}

void redis_link::handshake()
{
    // AUTH and SELECT go in one write with a PING behind them; the PING's
    // answer says all of them were taken.
    auto failed = std::make_shared<bool>(false);
    const auto step = [this, failed](const char* what) {
        return [this, failed, what](const redisReply* reply) {
            if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && !*failed) {
                *failed = true;
                fail(what);
            }
        };
    };
    if (!settings_.password.empty()) {
        command({"AUTH", settings_.password}, step("AUTH was refused"));
    }
    if (settings_.database != 0) {
        const std::string db = std::to_string(settings_.database);
        command({"SELECT", db}, step("SELECT was refused"));
    }
    command({"PING"}, [this, failed](const redisReply* reply) {
        if (reply == nullptr || *failed) {
            return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            fail("PING was refused");
            return;
        }
        if (on_connected) {
            on_connected();
        } else {
            mark_ready();
        }
    });
}

void redis_link::mark_ready()
{
    if (!connected() || ready_) {
        return;
    }
    ready_ = true;
    backoff_ = 0;
    if (reported_down_) {
        const ngx_uint_t level = report_level < NGX_LOG_INFO ? NGX_LOG_NOTICE : NGX_LOG_INFO;
        ngx_log_error(level, ngx_cycle->log, 0, "mcp_session %s is back", label_.c_str());
        reported_down_ = false;
    }
}

void redis_link::fail(const char* why)
{
    if (context_ == nullptr) {
        return;
    }
    last_problem_ = why;
    ++errors_;
    redisAsyncContext* context = context_;
    const bool was_connected = connected_;
    connected_ = false;
    redisAsyncFree(context);  // inside a reply callback: freed once it returns, on_disconnect then
    if (!was_connected) {
        context_ = nullptr;  // hiredis calls on_disconnect only for a connected context
        lost(why);
    }
}

void redis_link::on_disconnect(const redisAsyncContext* context, int) noexcept
{
    auto* link = static_cast<redis_link*>(context->data);
    if (link == nullptr) {
        return;  // stopped
    }
    link->context_ = nullptr;
    const std::string why = link->last_problem_.empty() ? (context->errstr[0] ? context->errstr : "connection closed")
                                                        : link->last_problem_;
    link->lost(why.c_str());
}

void redis_link::lost(const char* why)
{
    const bool was_ready = ready_;
    connected_ = false;
    ready_ = false;
    deadlines_.clear();
    last_problem_.clear();
    if (command_timer_.timer_set) {
        ngx_del_timer(&command_timer_);
    }
    if (stopping_) {
        return;
    }
    if (!reported_down_) {
        ngx_log_error(report_level, ngx_cycle->log, 0, "mcp_session %s is unreachable (%s); retrying with backoff",
                      label_.c_str(), why);
        reported_down_ = true;
    }
    if (was_ready && on_down) {
        on_down();
    }
    schedule_reconnect();
}

void redis_link::schedule_reconnect()
{
    backoff_ = backoff_ == 0 ? first_backoff_ms : std::min(backoff_ * 2, max_backoff_ms);
    ngx_add_timer(&reconnect_timer_, backoff_);
}

void redis_link::on_reconnect_timer(ngx_event_t* ev) noexcept
{
    static_cast<redis_link*>(ev->data)->connect();
}

void redis_link::arm_command_timer()
{
    if (!deadlines_.empty() && !command_timer_.timer_set) {
        const ngx_msec_t now = ngx_current_msec;
        const ngx_msec_t due = deadlines_.front();
        ngx_add_timer(&command_timer_, due > now ? due - now : 1);
    }
}

void redis_link::on_command_timer(ngx_event_t* ev) noexcept
{
    auto* link = static_cast<redis_link*>(ev->data);
    if (link->deadlines_.empty()) {
        return;
    }
    if (static_cast<ngx_msec_int_t>(link->deadlines_.front() - ngx_current_msec) > 0) {
        link->arm_command_timer();  // the one it was armed for was answered
        return;
    }
    link->fail(link->connected_ ? "a command timed out" : "connecting timed out");
}

bool redis_link::queue(const std::vector<std::string_view>& argv, pending* p)
{
    std::vector<const char*> args;
    std::vector<size_t> sizes;
    args.reserve(argv.size());
    sizes.reserve(argv.size());
    for (const std::string_view a : argv) {
        args.push_back(a.data());
        sizes.push_back(a.size());
    }
    if (redisAsyncCommandArgv(context_, on_reply, p, static_cast<int>(args.size()), args.data(), sizes.data()) !=
        REDIS_OK) {
        return false;
    }
    if (!p->subscription) {
        deadlines_.push_back(ngx_current_msec + settings_.timeout);
        arm_command_timer();
    }
    return true;
}

bool redis_link::command(const std::vector<std::string_view>& argv, reply_handler handler)
{
    if (!connected()) {
        return false;
    }
    auto* p = new pending{this, std::move(handler), false};
    if (!queue(argv, p)) {
        delete p;
        return false;
    }
    return true;
}

bool redis_link::join(std::string_view channel) { return connected() && queue({"SUBSCRIBE", channel}, &channels_); }

bool redis_link::leave(std::string_view channel) { return connected() && queue({"UNSUBSCRIBE", channel}, &channels_); }

bool redis_link::subscribe(std::string_view channel, reply_handler handler)
{
    if (!connected()) {
        return false;
    }
    auto* p = new pending{this, std::move(handler), true};
    if (!queue({"SUBSCRIBE", channel}, p)) {
        delete p;
        return false;
    }
    return true;
}

void redis_link::on_reply(redisAsyncContext*, void* reply, void* data) noexcept
{
    auto* p = static_cast<pending*>(data);
    const auto* r = static_cast<const redisReply*>(reply);
    redis_link* link = p->link;
    if (r == nullptr) {
        link->connected_ = false;  // the connection is going: nothing may be queued on it now
    } else if (!p->subscription) {
        if (!link->deadlines_.empty()) {
            link->deadlines_.pop_front();
        }
        ++link->round_trips_;
        if (r->type == REDIS_REPLY_ERROR) {
            ++link->errors_;
        }
    }
    try {
        if (p->kept) {
            if (link->on_channel_reply) {
                link->on_channel_reply(r);
            }
        } else if (p->handler) {
            p->handler(r);
        }
    } catch (...) {
        // A handler that cannot finish (no memory) loses its answer only.
    }
    if ((!p->subscription || r == nullptr) && !p->kept) {
        delete p;
    }
}

}  // namespace mcp_ngx
