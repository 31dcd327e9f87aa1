// state=PATH: a zone's sessions saved to disk and restored at start, so
// they outlive a restart or a binary upgrade.
#pragma once

#include "ngx_mcp_session_conf.hpp"

namespace mcp_ngx {

// init_module (master, once the cycle's error log is open), every cycle:
// opens each zone's state directory and loads its key file, both inherited
// by the workers about to fork; then zones made afresh load their state
// file. A missing file is normal; an unusable, unauthenticated or planted
// one is one error line and an empty zone, never a refusal to start.
void restore_state(ngx_cycle_t* cycle) noexcept;

// postconfiguration: the thread pool periodic saves write with.
ngx_int_t prepare_state_saves(ngx_conf_t* cf) noexcept;

// init_process: one worker per zone saves every state_interval, first
// adopting sessions from a file another nginx wrote (the old master of a
// binary upgrade). The zone is copied in slices, one lock hold and one
// timer tick each; the file is written by a thread of the
// pool. Nothing in it can block indefinitely: opens are O_NONBLOCK, the
// lock is LOCK_NB (busy: the save is skipped with a line), only regular
// files no larger than the zone are read.
ngx_int_t start_state_timers(ngx_cycle_t* cycle) noexcept;

// exit_process: a save still being sliced is abandoned (the master's exit
// save or a new worker's next one replaces it); a file written after the
// event loop stopped is reported. Its lock is released either way.
void finish_state_saves_at_exit(ngx_cycle_t* cycle) noexcept;

// exit_master (and single-process exit): the final save on quit or stop.
void save_state_at_exit(ngx_cycle_t* cycle) noexcept;

}  // namespace mcp_ngx
