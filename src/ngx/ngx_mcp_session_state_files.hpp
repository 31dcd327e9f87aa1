// The files of a zone's state directory (the state file, PATH.lock,
// PATH.key, PATH.tmp.*). The directory must be writable by the worker
// user, so anything running as that user can plant files there: every
// file in it is hostile input. The directory itself is configuration and
// trusted; it is opened once, and every file is reached relative to it
// with O_NOFOLLOW|O_NONBLOCK, required to be a regular file, never reused
// unless it passes the owner and mode checks, and never chowned by path.
#pragma once

#include "ngx_mcp_session_conf.hpp"

#include "mcp_session/state_file.hpp"

#include <string>

namespace mcp_ngx {

struct state_files {
    int dir_fd;              // the directory, opened once per cycle by the master
    const char* name;        // the state file's name inside it
    const char* path;        // its full path, for log lines
    ngx_uid_t owner;         // who owns every file in it: the worker user
    ngx_gid_t group;
    bool keyed;              // key below loaded; without it the zone is not saved or restored
    u_char key[mcp_session::state_key_size];
};

// Master, init_module, before the workers fork (they inherit all of it and
// never open the key file themselves). Opens the directory and loads the
// key file PATH.key, making a fresh one when it is missing or not
// trustworthy (then older state files are refused: they were signed with
// another key). Errors are logged; the result is then not keyed.
state_files* open_state_files(ngx_cycle_t* cycle, const zone_conf& zone) noexcept;

std::string_view key_of(const state_files& files);

struct file_identity {
    bool exists = false;
    std::int64_t mtime_ns = 0;
    std::int64_t size = 0;
};

// The directory entry itself (a planted symlink is not followed).
file_identity identify(const state_files& files);

enum class read_outcome { ok, missing, refused };

// Reads the state file if it is a regular file with one link, owned by the
// worker user, without group or other permissions, and at most `limit`
// bytes. Opening never blocks (a FIFO is refused, not waited on).
read_outcome read_state_file(const state_files& files, std::size_t limit, std::string& out, std::string& error);

// Writes a fresh temporary (O_EXCL, a random name: nothing planted is
// reused), gives it to the worker user through its descriptor when the
// master writes, flushes it and renames it over the state file (a
// planted entry there is replaced, never followed). Removed on failure.
bool write_state_file(const state_files& files, const std::string& bytes, std::string& error);

// flock on PATH.lock, never waiting: serialises "adopt what another
// nginx saved, then save" between the processes sharing the file (new
// workers and the old master in a binary upgrade). rename replaces the
// state file's inode, hence a side file.
class state_lock {
public:
    // `attempts` > 1: the master at exit retries for up to 50 ms each
    // (it serves nothing by then); workers try once.
    state_lock(const state_files& files, int attempts);
    ~state_lock();
    state_lock(const state_lock&) = delete;
    state_lock& operator=(const state_lock&) = delete;

    bool held() const { return held_; }
    bool busy() const { return busy_; }          // another process holds it
    bool replaced() const { return replaced_; }  // a planted entry was removed first
    const std::string& error() const { return error_; }

private:
    int fd_ = -1;
    bool held_ = false;
    bool busy_ = false;
    bool replaced_ = false;
    std::string error_;
};

}  // namespace mcp_ngx
