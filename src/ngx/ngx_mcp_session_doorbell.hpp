// Waking another worker. nginx has no worker-to-worker channel for
// modules, so the master makes one eventfd per worker slot before fork;
// every worker inherits all of them and listens on its own. The shared
// ring holds the data: a doorbell only says "look", and rings coalesce.
#pragma once

#include "ngx_mcp_session_bridge.hpp"

#include <bitset>

namespace mcp_ngx {

// How many worker slots this cycle runs (1 without a master process).
ngx_uint_t worker_slots(ngx_cycle_t* cycle) noexcept;

// Master, every cycle, while its zones are set up (a failure refuses the
// reload): one doorbell per worker_processes, once per cycle.
ngx_int_t stage_doorbells(ngx_cycle_t* cycle) noexcept;
// init_module (master, the cycle can no longer fail): the workers about
// to fork use the cycle's doorbells.
void commit_doorbells(ngx_cycle_t* cycle) noexcept;

// init_process: listen on this worker's doorbell; `on_ring` runs in the
// event loop after one or more rings, `on_exit` once the worker starts
// exiting (reload, quit), before it waits for its connections to close.
ngx_int_t listen_doorbell(ngx_cycle_t* cycle, void (*on_ring)(), void (*on_exit)()) noexcept;

void ring_doorbell(ngx_int_t worker) noexcept;

template <std::size_t N>
void ring_doorbells(const std::bitset<N>& workers) noexcept
{
    if (workers.none()) {
        return;
    }
    for (std::size_t i = 0; i < N; ++i) {
        if (workers.test(i)) {
            ring_doorbell(static_cast<ngx_int_t>(i));
        }
    }
}

}  // namespace mcp_ngx
