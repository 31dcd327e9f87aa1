// Writing a finished state snapshot off the event loop. Its MAC (which
// reads every byte), the write, the fsyncs and the rename run in a task of
// nginx's thread pool "default" where nginx is built with threads
// (Debian's is); the completion comes back to the event loop. Without
// threads they run in the event loop, as they always did.
#pragma once

#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_state_files.hpp"

#include "mcp_session/state_snapshot.hpp"

#include <atomic>
#include <memory>
#include <string>

namespace mcp_ngx {

// Configuration time, for a configuration with a state= zone: makes sure
// the pool exists, so nginx starts its threads in every worker.
ngx_int_t add_state_thread_pool(ngx_conf_t* cf) noexcept;

// What a write did, handed back to the event loop.
struct state_write_result {
    bool ok = false;
    std::string error;
    file_identity written;  // the state file right after the rename
    std::uint64_t sessions = 0;
    std::size_t bytes = 0;
};

// One per zone in a worker; one write at a time.
class state_file_writer {
public:
    using done_handler = void (*)(void* data, state_write_result& result);

    // init_process. Falls back to writing inline when nginx has no
    // threads or the pool cannot be found.
    state_file_writer(ngx_cycle_t* cycle, const state_files& files, done_handler done, void* data);
    state_file_writer(const state_file_writer&) = delete;
    state_file_writer& operator=(const state_file_writer&) = delete;

    // Takes the snapshot (freed once written) and the state lock (held
    // until `done` has returned, so no other save can replace the file
    // between this rename and `done`). `done` runs in the event loop:
    // later, or before write() returns when writing inline.
    void write(std::unique_ptr<mcp_session::state_snapshot> snapshot, std::unique_ptr<state_lock> lock);

    bool busy() const { return busy_; }
    bool threaded() const { return task_ != nullptr; }
    // Names where the file is written, for log lines.
    const char* where() const;

    // exit_process, after nginx's pools have run every queued task: ends a
    // write whose completion the event loop never got to (calls `done`).
    void finish_at_exit();

private:
    static void run(void* data, ngx_log_t* log) noexcept;  // a pool thread
    static void completed(ngx_event_t* ev) noexcept;       // the event loop
    void write_now() noexcept;
    void report();

    const state_files& files_;
    done_handler done_;
    void* data_;
    void* pool_ = nullptr;   // ngx_thread_pool_t*, when threaded
    void* task_ = nullptr;   // ngx_thread_task_t*, reused for every write
    bool busy_ = false;
    std::atomic<bool> ran_{false};  // set by the thread when it is done
    std::unique_ptr<mcp_session::state_snapshot> snapshot_;
    std::unique_ptr<state_lock> lock_;
    state_write_result result_;
};

}  // namespace mcp_ngx
