#include "ngx_mcp_session_state_files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

namespace mcp_ngx {
namespace {

// On every open in the directory: a planted symlink fails (ELOOP) instead
// of being followed, a FIFO or device opens without waiting for a peer.
constexpr int hostile = O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;

std::string side_name(const state_files& files, const char* suffix) { return std::string(files.name) + suffix; }

std::string open_error(const std::string& name)
{
    return "\"" + name + "\" " + (errno == ELOOP ? std::string("is a symbolic link") : "cannot be opened: " + std::string(strerror(errno)));
}

// What nginx itself makes in the directory: a regular file with one link
// (a hard link to someone else's file is not ours), owned by `owner`,
// readable by its owner only. Anything else was planted.
bool trustworthy(const struct stat& st, uid_t owner, std::string& why)
{
    char text[128];
    if (!S_ISREG(st.st_mode)) {
        why = "not a regular file";
    } else if (st.st_nlink != 1) {
        std::snprintf(text, sizeof(text), "%lu hard links", static_cast<unsigned long>(st.st_nlink));
        why = text;
    } else if (st.st_uid != owner) {
        std::snprintf(text, sizeof(text), "owned by uid %lu, not %lu", static_cast<unsigned long>(st.st_uid),
                      static_cast<unsigned long>(owner));
        why = text;
    } else if ((st.st_mode & 077) != 0) {
        std::snprintf(text, sizeof(text), "mode %04o, group or others have access", static_cast<unsigned>(st.st_mode & 07777));
        why = text;
    } else {
        return true;
    }
    return false;
}

bool read_exact(int fd, void* into, std::size_t size, std::string& error)
{
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = read(fd, static_cast<char*>(into) + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error = n == 0 ? "shorter than its size" : std::string("read failed: ") + strerror(errno);
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

bool write_all(int fd, const char* bytes, std::size_t size)
{
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = write(fd, bytes + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// The master runs as root: what it creates goes to the worker user, through
// the descriptor of a file it has just made with O_EXCL (never by path).
bool give_to_worker_user(const state_files& files, int fd)
{
    return geteuid() != 0 || fchown(fd, files.owner, files.group) == 0;
}

std::string random_suffix()
{
    std::uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != static_cast<ssize_t>(sizeof(r))) {
        r = static_cast<std::uint64_t>(ngx_random()) << 32 ^ static_cast<std::uint64_t>(ngx_random()) ^
            static_cast<std::uint64_t>(ngx_current_msec);
    }
    char text[17];
    std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(r));
    return text;
}

// Why an open key file cannot be used ("" when it can): it must be what
// load_key makes, owned by the master's own user.
std::string key_file_flaw(int fd, state_files& files)
{
    struct stat st {};
    std::string why;
    if (fstat(fd, &st) != 0) {
        return std::string("fstat failed: ") + strerror(errno);
    }
    if (!trustworthy(st, geteuid(), why)) {
        return why;
    }
    if (st.st_size != static_cast<off_t>(sizeof(files.key))) {
        return std::to_string(st.st_size) + " bytes, not " + std::to_string(sizeof(files.key));
    }
    return read_exact(fd, files.key, sizeof(files.key), why) ? std::string() : why;
}

// The key file PATH.key: random bytes made once by the master with O_EXCL,
// mode 0600, owned by the master's user (root, when nginx starts as root:
// the worker user can neither read nor forge it, only delete it, which
// makes the next start use a new key and refuse the old state file).
// Returns false (logged) when no key could be had.
bool load_key(state_files& files, ngx_log_t* log, const ngx_str_t& zone)
{
    const std::string name = side_name(files, ".key");
    const std::string shown = std::string(files.path) + ".key";
    int fd = openat(files.dir_fd, name.c_str(), O_RDONLY | hostile);
    std::string why;
    if (fd >= 0) {
        why = key_file_flaw(fd, files);
        close(fd);
        if (why.empty()) {
            return true;
        }
    } else if (errno != ENOENT) {
        why = open_error(shown);
    }
    if (!why.empty()) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "mcp_session zone \"%V\": state key file \"%s\" is not trustworthy (%s); replacing it, state files signed "
                      "with it will be refused",
                      &zone, shown.c_str(), why.c_str());
        if (unlinkat(files.dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "mcp_session zone \"%V\": cannot remove \"%s\"; state not saved",
                          &zone, shown.c_str());
            return false;
        }
    }
    if (getrandom(files.key, sizeof(files.key), 0) != static_cast<ssize_t>(sizeof(files.key))) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "mcp_session zone \"%V\": no random bytes for \"%s\"; state not saved",
                      &zone, shown.c_str());
        return false;
    }
    fd = openat(files.dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | hostile, 0600);
    if (fd < 0) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "mcp_session zone \"%V\": cannot create the state key file \"%s\"; state not saved",
                      &zone, shown.c_str());
        return false;
    }
    const bool ok = write_all(fd, reinterpret_cast<const char*>(files.key), sizeof(files.key)) && fsync(fd) == 0;
    const ngx_err_t err = ngx_errno;
    close(fd);
    if (!ok) {
        unlinkat(files.dir_fd, name.c_str(), 0);
        ngx_log_error(NGX_LOG_ERR, log, err, "mcp_session zone \"%V\": writing the state key file \"%s\" failed; state not saved",
                      &zone, shown.c_str());
        return false;
    }
    ngx_log_error(NGX_LOG_NOTICE, log, 0, "mcp_session zone \"%V\": created the state key file \"%s\"", &zone, shown.c_str());
    return true;
}

void close_directory(void* data) noexcept
{
    auto* files = static_cast<state_files*>(data);
    if (files->dir_fd >= 0) {
        close(files->dir_fd);
        files->dir_fd = -1;
    }
}

}  // namespace

state_files* open_state_files(ngx_cycle_t* cycle, const zone_conf& zone) noexcept
{
    try {
        void* memory = ngx_pcalloc(cycle->pool, sizeof(state_files));
        ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(cycle->pool, 0);
        if (memory == nullptr || cleanup == nullptr) {
            return nullptr;
        }
        auto* files = new (memory) state_files{};
        files->dir_fd = -1;
        cleanup->handler = close_directory;
        cleanup->data = files;

        // state= is absolute (nginx made it so); the directory is what
        // precedes the last slash.
        const char* path = reinterpret_cast<const char*>(zone.state_path.data);
        const char* slash = std::strrchr(path, '/');
        if (slash == nullptr || slash[1] == '\0') {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "mcp_session zone \"%V\": state file \"%s\" names no file",
                          &zone.name, path);
            return files;
        }
        files->path = path;
        files->name = slash + 1;
        const std::string dir = slash == path ? std::string("/") : std::string(path, static_cast<std::size_t>(slash - path));
        // The directory is configuration, trusted like nginx.conf (it may be
        // a symlink, as /var/lib often is); only what is inside it is not.
        files->dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (files->dir_fd < 0) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                          "mcp_session zone \"%V\": state directory \"%s\" cannot be opened; state not saved",
                          &zone.name, dir.c_str());
            return files;
        }
        auto* ccf = reinterpret_cast<ngx_core_conf_t*>(ngx_get_conf(cycle->conf_ctx, ngx_core_module));
        if (geteuid() == 0 && ccf != nullptr && ccf->user != static_cast<ngx_uid_t>(NGX_CONF_UNSET_UINT)) {
            files->owner = ccf->user;
            files->group = ccf->group;
        } else {
            files->owner = geteuid();
            files->group = getegid();
        }
        files->keyed = load_key(*files, cycle->log, zone.name);
        return files;
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "mcp_session zone \"%V\": opening the state directory failed: %s",
                      &zone.name, e.what());
        return nullptr;
    }
}

std::string_view key_of(const state_files& files)
{
    return {reinterpret_cast<const char*>(files.key), sizeof(files.key)};
}

file_identity identify(const state_files& files)
{
    struct stat st {};
    if (fstatat(files.dir_fd, files.name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return {};
    }
    return {true, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
            static_cast<std::int64_t>(st.st_size)};
}

read_outcome read_state_file(const state_files& files, std::size_t limit, std::string& out, std::string& error)
{
    const int fd = openat(files.dir_fd, files.name, O_RDONLY | hostile);
    if (fd < 0) {
        if (errno == ENOENT) {
            return read_outcome::missing;
        }
        error = errno == ELOOP ? std::string("a symbolic link") : std::string("cannot be opened: ") + strerror(errno);
        return read_outcome::refused;
    }
    struct stat st {};
    bool ok = fstat(fd, &st) == 0;
    if (!ok) {
        error = std::string("fstat failed: ") + strerror(errno);
    } else if (!trustworthy(st, files.owner, error)) {
        ok = false;
    } else if (static_cast<std::size_t>(st.st_size) > limit) {
        error = std::to_string(st.st_size) + " bytes, larger than the zone";
        ok = false;
    } else {
        out.resize(static_cast<std::size_t>(st.st_size));
        ok = read_exact(fd, &out[0], out.size(), error);
    }
    close(fd);
    return ok ? read_outcome::ok : read_outcome::refused;
}

bool write_state_file(const state_files& files, const std::string& bytes, std::string& error)
{
    std::string temp;
    int fd = -1;
    for (int attempt = 0; attempt < 4 && fd < 0; ++attempt) {
        temp = side_name(files, ".tmp.") + std::to_string(getpid()) + "." + random_suffix();
        fd = openat(files.dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | hostile, 0600);
        if (fd < 0 && errno != EEXIST) {
            break;
        }
    }
    if (fd < 0) {
        error = "cannot create \"" + temp + "\": " + strerror(errno);
        return false;
    }
    bool ok = give_to_worker_user(files, fd);
    if (!ok) {
        error = "cannot give \"" + temp + "\" to the worker user: " + strerror(errno);
    } else if (!write_all(fd, bytes.data(), bytes.size()) || fsync(fd) != 0) {
        error = "writing \"" + temp + "\" failed: " + strerror(errno);
        ok = false;
    }
    close(fd);
    // renameat replaces whatever entry the state file's name had (a planted
    // symlink or FIFO included) without following it.
    if (ok && renameat(files.dir_fd, temp.c_str(), files.dir_fd, files.name) != 0) {
        error = std::string("rename failed: ") + strerror(errno);
        ok = false;
    }
    if (!ok) {
        unlinkat(files.dir_fd, temp.c_str(), 0);
        return false;
    }
    // The rename itself reaches the disk only with the directory's entry.
    if (fsync(files.dir_fd) != 0) {
        error = std::string("syncing the state directory after the rename failed: ") + strerror(errno);
        return false;
    }
    return true;
}

namespace {

// PATH.lock as nginx makes it: a regular file of the worker user. Its
// contents are never read; only what it is and who made it count.
bool usable_lock(int fd, const state_files& files)
{
    struct stat st {};
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == files.owner;
}

int create_lock(const state_files& files, const std::string& name)
{
    const int fd = openat(files.dir_fd, name.c_str(), O_RDONLY | O_CREAT | O_EXCL | hostile, 0600);
    if (fd >= 0 && !give_to_worker_user(files, fd)) {
        close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

state_lock::state_lock(const state_files& files, int attempts)
{
    const std::string name = side_name(files, ".lock");
    fd_ = openat(files.dir_fd, name.c_str(), O_RDONLY | hostile);
    if (fd_ < 0 && errno == ENOENT) {
        fd_ = create_lock(files, name);
        if (fd_ < 0 && errno == EEXIST) {
            fd_ = openat(files.dir_fd, name.c_str(), O_RDONLY | hostile);  // another process made it first
        }
    }
    // A planted entry (symlink, FIFO, someone else's file) is removed, not
    // used: unlinkat takes the name away without following it, and the
    // fresh lock is made with O_EXCL. A lock of ours is never removed, so
    // processes holding it keep excluding each other.
    if (fd_ < 0 ? errno == ELOOP : !usable_lock(fd_, files)) {
        if (fd_ >= 0) {
            close(fd_);
        }
        replaced_ = unlinkat(files.dir_fd, name.c_str(), 0) == 0;
        fd_ = replaced_ ? create_lock(files, name) : -1;
    }
    if (fd_ < 0) {
        error_ = "lock file " + open_error(name);
        return;
    }
    for (int i = 0; i < attempts; ++i) {
        if (flock(fd_, LOCK_EX | LOCK_NB) == 0) {
            held_ = true;
            busy_ = false;
            return;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            error_ = std::string("locking \"") + name + "\" failed: " + strerror(errno);
            return;
        }
        busy_ = errno == EWOULDBLOCK;
        if (i + 1 < attempts) {
            ngx_msleep(50);
        }
    }
    if (busy_) {
        error_ = "\"" + name + "\" is locked by another process";
    }
}

state_lock::~state_lock()
{
    if (fd_ >= 0) {
        close(fd_);  // releases the lock
    }
}

}  // namespace mcp_ngx
