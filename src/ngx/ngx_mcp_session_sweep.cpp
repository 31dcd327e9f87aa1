// Every worker arms a timer per zone; the zone's shared schedule lets
// only one of them sweep per interval.
#include "ngx_mcp_session_phases.hpp"

#include "ngx_mcp_session_store.hpp"

#include <exception>

namespace mcp_ngx {
namespace {

// Bounds one lock hold: a million sessions expiring together are removed
// in slices, with other workers' requests served in between.
constexpr std::size_t sweep_slice = 4096;

void on_sweep_timer(ngx_event_t* ev) noexcept
{
    auto* zone = static_cast<zone_conf*>(ev->data);
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }
    ngx_msec_t next = static_cast<ngx_msec_t>(zone->sweep.interval_ms);
    try {
        bool more = false;
        session_store store(*zone);
        const std::size_t removed = store.sweep_if_due(now_ms(), sweep_slice, &more);
        if (removed > 0) {
            ngx_log_error(NGX_LOG_INFO, ev->log, 0, "mcp_session zone \"%V\": sweep removed %uz expired sessions",
                          &zone->name, removed);
        }
        if (more) {
            next = 1;
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0, "mcp_session zone \"%V\": sweep failed: %s", &zone->name, e.what());
    }
    ngx_add_timer(ev, next);
}

}  // namespace

ngx_int_t start_sweep_timers(ngx_cycle_t* cycle) noexcept
{
    for_each_zone(cycle, [&](zone_conf& zone) {
        ngx_event_t* ev = &zone.sweep_timer;
        ev->handler = on_sweep_timer;
        ev->data = &zone;
        ev->log = cycle->log;
        ev->cancelable = 1;  // never holds up a graceful shutdown
        ngx_add_timer(ev, static_cast<ngx_msec_t>(zone.sweep.interval_ms));
    });
    return NGX_OK;
}

}  // namespace mcp_ngx
