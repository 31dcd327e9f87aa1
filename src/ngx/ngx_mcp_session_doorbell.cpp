#include "ngx_mcp_session_doorbell.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace mcp_ngx {
namespace {

// The current cycle's doorbells, inherited by every worker at fork.
int* doorbell_fds = nullptr;
ngx_uint_t doorbell_count = 0;
// Made for a cycle that may still fail (its pool, and these descriptors
// with it, are then destroyed): taken only once the cycle commits.
ngx_cycle_t* staged_cycle = nullptr;
int* staged_fds = nullptr;
ngx_uint_t staged_count = 0;
void (*ring_handler)() = nullptr;
void (*exit_handler)() = nullptr;

void close_doorbells(void* data) noexcept
{
    auto* fds = static_cast<int*>(data);
    for (ngx_uint_t i = 0; fds[i] != -2; ++i) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    if (staged_fds == fds) {
        // The cycle failed before it committed: forget it, so a later cycle
        // allocated at the same address is not taken for it.
        staged_cycle = nullptr;
        staged_fds = nullptr;
    }
}

void on_doorbell(ngx_event_t* ev) noexcept
{
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    std::uint64_t rings = 0;
    // Non-blocking read drains the counter: many rings, one wake-up.
    while (read(c->fd, &rings, sizeof(rings)) == static_cast<ssize_t>(sizeof(rings))) {
    }
    if (c->close && exit_handler != nullptr) {
        exit_handler();  // the worker is leaving: ngx_close_idle_connections called us
        return;
    }
    if (ring_handler != nullptr) {
        ring_handler();
    }
}

}  // namespace

ngx_uint_t worker_slots(ngx_cycle_t* cycle) noexcept
{
    auto* ccf = reinterpret_cast<ngx_core_conf_t*>(ngx_get_conf(cycle->conf_ctx, ngx_core_module));
    return ccf->master ? static_cast<ngx_uint_t>(ccf->worker_processes) : 1;
}

ngx_int_t stage_doorbells(ngx_cycle_t* cycle) noexcept
{
    if (staged_cycle == cycle) {
        return NGX_OK;  // another zone of this cycle made them
    }
    const ngx_uint_t count = worker_slots(cycle);

    // -2 terminates the array for the cleanup, which runs when the master
    // destroys this cycle: after a later reload, or at once if it fails.
    auto* fds = static_cast<int*>(ngx_palloc(cycle->pool, (count + 1) * sizeof(int)));
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(cycle->pool, 0);
    if (fds == nullptr || cleanup == nullptr) {
        return NGX_ERROR;
    }
    for (ngx_uint_t i = 0; i <= count; ++i) {
        fds[i] = -2;
    }
    cleanup->handler = close_doorbells;
    cleanup->data = fds;
    for (ngx_uint_t i = 0; i < count; ++i) {
        fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fds[i] == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "mcp_session: eventfd() failed for worker %ui of %ui", i, count);
            return NGX_ERROR;
        }
    }
    staged_cycle = cycle;
    staged_fds = fds;
    staged_count = count;
    return NGX_OK;
}

void commit_doorbells(ngx_cycle_t* cycle) noexcept
{
    if (staged_cycle == cycle) {
        doorbell_fds = staged_fds;
        doorbell_count = staged_count;
    } else {
        doorbell_fds = nullptr;  // no zone in this cycle
        doorbell_count = 0;
    }
    staged_cycle = nullptr;
}

ngx_int_t listen_doorbell(ngx_cycle_t* cycle, void (*on_ring)(), void (*on_exit)()) noexcept
{
    const auto slot = static_cast<ngx_uint_t>(ngx_worker);
    if (doorbell_fds == nullptr || slot >= doorbell_count) {
        return NGX_OK;  // no doorbell for this worker number
    }
    ngx_connection_t* c = ngx_get_connection(doorbell_fds[slot], cycle->log);
    if (c == nullptr) {
        return NGX_ERROR;
    }
    c->read->handler = on_doorbell;
    c->read->channel = 1;  // like nginx's own channel: not a leaked socket at exit
    c->read->log = cycle->log;
    c->data = nullptr;
    // When the worker starts exiting, ngx_close_idle_connections runs the
    // read handler of every idle connection with c->close set: the one
    // moment the worker learns it is leaving. The connection stays open
    // (a channel is no leaked socket at exit).
    c->idle = 1;
    ring_handler = on_ring;
    exit_handler = on_exit;
    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        return NGX_ERROR;
    }
    return NGX_OK;
}

void ring_doorbell(ngx_int_t worker) noexcept
{
    if (doorbell_fds == nullptr || worker < 0 || static_cast<ngx_uint_t>(worker) >= doorbell_count) {
        return;
    }
    const std::uint64_t one = 1;
    // A full counter means the worker has plenty of rings to wake for.
    (void)!write(doorbell_fds[worker], &one, sizeof(one));
}

}  // namespace mcp_ngx
