// Blocking and epoll HTTP client pieces shared by the bench/ tools:
// loopback connections, keep-alive responses, an incremental SSE reader.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace bench {

inline std::int64_t now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

inline int connect_local(int port)
{
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

inline void write_all(int fd, const std::string& data)
{
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = write(fd, data.data() + done, data.size() - done);
        if (n <= 0) {
            throw std::runtime_error("write failed");
        }
        done += static_cast<std::size_t>(n);
    }
}

// Reads one HTTP response with Content-Length on a blocking keep-alive socket.
inline int read_response(int fd, std::string& buffer)
{
    for (;;) {
        const std::size_t head_end = buffer.find("\r\n\r\n");
        if (head_end != std::string::npos) {
            const int status = std::atoi(buffer.c_str() + 9);
            std::size_t length = 0;
            const std::size_t cl = buffer.find("Content-Length: ");
            if (cl != std::string::npos && cl < head_end) {
                length = std::strtoul(buffer.c_str() + cl + 16, nullptr, 10);
            }
            if (buffer.size() >= head_end + 4 + length) {
                buffer.erase(0, head_end + 4 + length);
                return status;
            }
        }
        char chunk[16384];
        const ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0) {
            throw std::runtime_error("connection closed while reading a response");
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
    }
}

// Incremental reader of one SSE response: headers, optional chunked
// framing, then `data:` lines; calls on_data for each complete data line.
struct stream_reader {
    std::string raw;
    bool headers_done = false;
    bool chunked = false;
    std::size_t chunk_left = 0;
    bool in_chunk_crlf = false;
    std::string body;  // de-chunked bytes not yet split into lines

    template <typename F>
    void feed(const char* data, std::size_t n, F&& on_data)
    {
        if (!headers_done) {
            raw.append(data, n);
            const std::size_t end = raw.find("\r\n\r\n");
            if (end == std::string::npos) {
                return;
            }
            headers_done = true;
            chunked = raw.substr(0, end).find("chunked") != std::string::npos;
            const std::string rest = raw.substr(end + 4);
            raw.clear();
            dechunk(rest.data(), rest.size());
        } else {
            dechunk(data, n);
        }
        std::size_t start = 0;
        for (;;) {
            const std::size_t nl = body.find('\n', start);
            if (nl == std::string::npos) {
                break;
            }
            if (body.compare(start, 6, "data: ") == 0) {
                on_data(body.data() + start + 6, nl - start - 6);
            }
            start = nl + 1;
        }
        body.erase(0, start);
    }

    void dechunk(const char* data, std::size_t n)
    {
        if (!chunked) {
            body.append(data, n);
            return;
        }
        raw.append(data, n);
        std::size_t pos = 0;
        for (;;) {
            if (chunk_left > 0) {
                const std::size_t take = std::min(chunk_left, raw.size() - pos);
                body.append(raw, pos, take);
                pos += take;
                chunk_left -= take;
                if (chunk_left > 0) {
                    break;
                }
                in_chunk_crlf = true;
            }
            if (in_chunk_crlf) {
                if (raw.size() - pos < 2) {
                    break;
                }
                pos += 2;
                in_chunk_crlf = false;
            }
            const std::size_t eol = raw.find("\r\n", pos);
            if (eol == std::string::npos) {
                break;
            }
            chunk_left = std::strtoul(raw.c_str() + pos, nullptr, 16);
            pos = eol + 2;
            if (chunk_left == 0) {
                in_chunk_crlf = true;
            }
        }
        raw.erase(0, pos);
    }
};

inline void raise_fd_limit()
{
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace bench
