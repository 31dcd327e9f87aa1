// What a configuration cycle sets up for a zone before it commits.
// nginx treats a failing init_module as fatal (the master exits, on a
// reload too), while a failing shared-zone init refuses the new
// configuration and keeps the running one: so everything that can fail
// is done here, from the zone's init, and init_module only commits.
#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_doorbell.hpp"
#include "ngx_mcp_session_events.hpp"
#include "ngx_mcp_session_phases.hpp"
#include "ngx_mcp_session_zone.hpp"

namespace mcp_ngx {

ngx_int_t prepare_zone_for_cycle(zone_conf& zone) noexcept
{
    if (ngx_test_config) {
        return NGX_OK;  // nginx -t opens no descriptors and changes no zone
    }
    ngx_cycle_t* cycle = zone.conf_cycle;
    if (stage_doorbells(cycle) != NGX_OK) {
        return NGX_ERROR;
    }
    const ngx_uint_t workers = worker_slots(cycle);
    try {
        event_store store(zone);
        zone.cycle = store.begin_cycle();
        // Every worker slot's inbox now, so a zone's size in use does not
        // depend on when workers started. A worker without one (a zone too
        // small for them all) is not broken: it checks all its streams at
        // each doorbell instead of the ones named.
        ngx_uint_t without = 0;
        for (ngx_uint_t worker = 0; worker < workers; ++worker) {
            without += store.open_inbox(static_cast<ngx_int_t>(worker)) ? 0 : 1;
        }
        if (without > 0) {
            ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                          "mcp_session zone \"%V\" has no room for the inboxes of %ui of %ui workers (%uz bytes "
                          "each); those workers check all their streams on every delivery",
                          &zone.name, without, workers, sizeof(worker_inbox));
        }
    } catch (...) {
        return NGX_ERROR;
    }
    return NGX_OK;
}

}  // namespace mcp_ngx
