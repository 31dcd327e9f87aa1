#include "ngx_mcp_session_state_writer.hpp"

#include <exception>
#include <utility>

namespace mcp_ngx {
namespace {

#if (NGX_THREADS)
// The pool `aio threads` uses too; `thread_pool default threads=N;` sizes it.
ngx_str_t pool_name = ngx_string("default");
#endif

}  // namespace

ngx_int_t add_state_thread_pool(ngx_conf_t* cf) noexcept
{
#if (NGX_THREADS)
    bool wanted = false;
    for_each_zone(cf->cycle, [&](zone_conf& zone) { wanted = wanted || zone.state_path.len > 0; });
    if (wanted && ngx_thread_pool_add(cf, &pool_name) == nullptr) {
        return NGX_ERROR;
    }
#else
    (void)cf;
#endif
    return NGX_OK;
}

state_file_writer::state_file_writer(ngx_cycle_t* cycle, const state_files& files, done_handler done, void* data)
    : files_(files), done_(done), data_(data)
{
#if (NGX_THREADS)
    ngx_thread_pool_t* pool = ngx_thread_pool_get(cycle, &pool_name);
    ngx_thread_task_t* task = pool != nullptr ? ngx_thread_task_alloc(cycle->pool, 0) : nullptr;
    if (task == nullptr) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "mcp_session: no thread pool \"%V\"; state files are written in the event loop", &pool_name);
        return;
    }
    task->ctx = this;
    task->handler = run;
    task->event.handler = completed;
    task->event.data = this;
    task->event.log = cycle->log;
    pool_ = pool;
    task_ = task;
#else
    (void)cycle;
#endif
}

const char* state_file_writer::where() const
{
    return threaded() ? "by thread pool \"default\"" : "in the event loop (nginx without threads)";
}

void state_file_writer::write(std::unique_ptr<mcp_session::state_snapshot> snapshot, std::unique_ptr<state_lock> lock)
{
    snapshot_ = std::move(snapshot);
    lock_ = std::move(lock);
    result_ = {};
    ran_.store(false);
    busy_ = true;
#if (NGX_THREADS)
    if (task_ != nullptr) {
        if (ngx_thread_task_post(static_cast<ngx_thread_pool_t*>(pool_), static_cast<ngx_thread_task_t*>(task_)) ==
            NGX_OK) {
            return;
        }
        // Queue full (nginx logged it): this one is written here.
    }
#endif
    write_now();
    ran_.store(true);
    report();
}

void state_file_writer::run(void* data, ngx_log_t*) noexcept
{
    auto* self = static_cast<state_file_writer*>(data);
    self->write_now();
    self->ran_.store(true, std::memory_order_release);
}

// No nginx call that is not thread-safe: no logging, no zone, no pool.
void state_file_writer::write_now() noexcept
{
    try {
        const std::string& bytes = snapshot_->finish(key_of(files_));
        result_.sessions = snapshot_->count();
        result_.bytes = bytes.size();
        result_.ok = write_state_file(files_, bytes, result_.error);
        if (result_.ok) {
            result_.written = identify(files_);
        }
    } catch (const std::exception& e) {
        result_.ok = false;
        result_.error = e.what();
    }
    snapshot_.reset();  // a snapshot of a large zone is freed here, not in the event loop
}

void state_file_writer::completed(ngx_event_t* ev) noexcept
{
    static_cast<state_file_writer*>(ev->data)->report();
}

void state_file_writer::report()
{
    busy_ = false;
    done_(data_, result_);
    lock_.reset();  // only now may another save replace the file
}

void state_file_writer::finish_at_exit()
{
    if (busy_ && ran_.load(std::memory_order_acquire)) {
        report();
    }
}

}  // namespace mcp_ngx
