// SSE load client for bench/: opens many event streams (ngx_mcp_session or
// nchan), publishes at a fixed total rate through the HTTP publish
// endpoint, and measures delivery and publish->deliver latency from a
// timestamp in each payload. One epoll thread reads streams, one publishes.
//
//   sse_bench deliver --target mcp|nchan --port P --streams N --rate R --seconds S [--publish-port A]
//                     (streams open on P; sessions are learned and events published on A, default P:
//                     two nginx nodes sharing a Redis, publish on one, deliver from the other)
//   sse_bench replay  --port P --events 256 --size 1024 --runs 50
//   sse_bench resume  --port P --path /mcp-sse --prefix live- --events 64 --runs 50
//                     (a POST whose backend answers with E events, then GETs resuming it from P.0)
//   sse_bench populate --port P --count N --prefix p [--path /mcp]   (learn N sessions, pipelined)
//   sse_bench fill --port P --count N --prefix p --path /rings --events E --size S [--target nchan]
//                                     (N sessions, each with E events of S bytes; nchan:
//                                     N channels PREFIXi through /nchan/pub)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_client.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace bench;


struct options {
    std::string mode;
    std::string target = "mcp";
    int port = 0;
    int publish_port = 0;  // 0: the same as port
    int streams = 1000;
    int rate = 1000;
    double seconds = 3;
    int events = 256;
    int size = 1024;
    int runs = 50;
    int publishers = 32;
    long long count = 0;
    std::string prefix = "p";
    std::string path = "/mcp";
};

// What the target's URLs look like. Every deliver run names its own
// sessions and channels (`run`): a ring still holding an earlier run's
// events would replay them to the new stream (ours replays a session's
// buffered events to a GET without Last-Event-ID; nchan starts new
// subscribers at the newest message), which is load nchan never sees.
struct target_api {
    bool mcp;
    std::string run;
    std::string session(int i) const { return "bench-" + run + "-" + std::to_string(i); }
    std::string stream_request(int i) const
    {
        if (mcp) {
            return "GET /mcp HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\nMcp-Session-Id: " + session(i) +
                   "\r\n\r\n";
        }
        return "GET /nchan/sub?id=c" + run + "-" + std::to_string(i) +
               " HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n";
    }
    std::string publish_request(int i, const std::string& body) const
    {
        return mcp ? publish_to_session("/mcp", session(i), body)
                   : "POST /nchan/pub?id=c" + run + "-" + std::to_string(i) + " HTTP/1.1\r\nHost: bench\r\n" +
                         body_part(body);
    }
    // `path`: the location of mcp_session; its publish endpoint is path/publish.
    static std::string publish_to_session(const std::string& path, const std::string& id, const std::string& body)
    {
        return "POST " + path + "/publish HTTP/1.1\r\nHost: bench\r\nMcp-Session-Id: " + id + "\r\n" + body_part(body);
    }
    static std::string body_part(const std::string& body)
    {
        return "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }
};

long long number_after(const char* data, std::size_t n, const char* key)
{
    const std::string_view text(data, n);
    const std::size_t at = text.find(key);
    if (at == std::string_view::npos) {
        return -1;
    }
    return std::atoll(data + at + std::strlen(key));
}

std::string payload(long long seq, std::int64_t t, int size)
{
    std::string body = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"seq\":" +
                       std::to_string(seq) + ",\"t\":" + std::to_string(t) + ",\"pad\":\"";
    const int pad = std::max(0, size - static_cast<int>(body.size()) - 4);
    body.append(static_cast<std::size_t>(pad), 'x');
    body += "\"}}";
    return body;
}

double percentile(std::vector<std::int64_t>& values, double p)
{
    if (values.empty()) {
        return 0;
    }
    const std::size_t k = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1));
    std::nth_element(values.begin(), values.begin() + static_cast<long>(k), values.end());
    return static_cast<double>(values[k]) / 1000.0;
}


// Sends `count` requests made by `request(k)` on one keep-alive
// connection, 64 pipelined at a time; each must be answered `status`
// (0: any answer will do).
template <typename MakeRequest>
void pipelined(int fd, long long count, int status, MakeRequest request, const char* what)
{
    std::string buffer;
    constexpr long long window = 64;
    for (long long done = 0; done < count;) {
        const long long batch = std::min(window, count - done);
        std::string requests;
        for (long long k = 0; k < batch; ++k) {
            requests += request(done + k);
        }
        write_all(fd, requests);
        for (long long k = 0; k < batch; ++k) {
            if (const int got = read_response(fd, buffer); status != 0 && got != status) {
                throw std::runtime_error(std::string(what) + ": a request failed");
            }
        }
        done += batch;
    }
}

int run_deliver(const options& opt)
{
    const target_api api{opt.target == "mcp", std::to_string(getpid())};
    raise_fd_limit();
    if (api.mcp) {  // sessions are learned from the backend's answer, on the publishing node
        const int fd = connect_local(opt.publish_port);
        pipelined(fd, opt.streams, 200, [&](long long i) {
            return "POST /mcp?sid=" + api.session(static_cast<int>(i)) +
                   " HTTP/1.1\r\nHost: bench\r\nContent-Length: 2\r\n\r\n{}";
        }, "creating the sessions");
        close(fd);
    }

    const int ep = epoll_create1(0);
    std::vector<stream_reader> readers(static_cast<std::size_t>(opt.streams));
    std::vector<int> fds;
    for (int i = 0; i < opt.streams; ++i) {
        const int fd = connect_local(opt.port);
        write_all(fd, api.stream_request(i));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<std::uint32_t>(i);
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        fds.push_back(fd);
    }

    const long long capacity = static_cast<long long>(opt.rate * opt.seconds) + 16;
    std::vector<std::uint8_t> seen(static_cast<std::size_t>(capacity), 0);
    std::vector<std::int64_t> latencies;
    latencies.reserve(static_cast<std::size_t>(capacity));
    std::atomic<long long> accepted{0};
    std::atomic<bool> publishing{true};
    long long delivered = 0, duplicates = 0;

    // Let every stream open (nchan needs the subscriber before a publish
    // to count as live; ours would replay anyway): at least 500 ms, and
    // until every stream has its headers (on another node than the
    // sessions', each GET first looks its session up in Redis), 10 s at most.
    const std::int64_t settle_from = now_ns();
    const auto all_open = [&] {
        return std::all_of(readers.begin(), readers.end(), [](const stream_reader& r) { return r.headers_done; });
    };
    while (now_ns() < settle_from + 500'000'000 || (!all_open() && now_ns() < settle_from + 10'000'000'000LL)) {
        epoll_event events[256];
        const int n = epoll_wait(ep, events, 256, 50);
        for (int k = 0; k < n; ++k) {
            char chunk[65536];
            const ssize_t got = read(fds[events[k].data.u32], chunk, sizeof(chunk));
            if (got > 0) {
                readers[events[k].data.u32].feed(chunk, static_cast<std::size_t>(got), [](const char*, std::size_t) {});
            }
        }
    }

    std::int64_t publish_started = now_ns();
    std::thread publisher([&] {
        std::vector<int> conns;
        for (int c = 0; c < opt.publishers; ++c) {
            conns.push_back(connect_local(opt.publish_port));
        }
        const int pep = epoll_create1(0);
        std::vector<bool> busy(conns.size(), false);
        std::vector<std::string> buffers(conns.size());
        for (std::size_t c = 0; c < conns.size(); ++c) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u32 = static_cast<std::uint32_t>(c);
            epoll_ctl(pep, EPOLL_CTL_ADD, conns[c], &ev);
        }
        const std::int64_t start = now_ns();
        const std::int64_t end = start + static_cast<std::int64_t>(opt.seconds * 1e9);
        long long sent = 0, in_flight = 0;
        while (true) {
            const std::int64_t t = now_ns();
            if (t < end) {
                const long long due = static_cast<long long>(static_cast<double>(t - start) * opt.rate / 1e9);
                for (std::size_t c = 0; c < conns.size() && sent < due && sent < capacity - 1; ++c) {
                    if (busy[c]) {
                        continue;
                    }
                    const long long seq = sent++;
                    write_all(conns[c], api.publish_request(static_cast<int>(seq % opt.streams),
                                                           payload(seq, now_ns(), 256)));
                    busy[c] = true;
                    ++in_flight;
                }
            } else if (in_flight == 0) {
                break;
            }
            // Sleep until the next publish is due or an answer arrives: a
            // spinning client would steal a core from nginx on a 2-core box.
            // Behind schedule means every connection is busy: wait for an answer.
            const std::int64_t next_due = start + static_cast<std::int64_t>(static_cast<double>(sent) * 1e9 / opt.rate);
            const std::int64_t wait_ns = std::clamp<std::int64_t>(next_due - now_ns(), 1'000'000 * (next_due <= t), 1'000'000);
            const timespec timeout{0, static_cast<long>(wait_ns)};
            epoll_event events[64];
            const int n = epoll_pwait2(pep, events, 64, &timeout, nullptr);
            for (int k = 0; k < n; ++k) {
                const std::size_t c = events[k].data.u32;
                char chunk[16384];
                const ssize_t got = read(conns[c], chunk, sizeof(chunk));
                if (got <= 0) {
                    continue;
                }
                buffers[c].append(chunk, static_cast<std::size_t>(got));
                const std::size_t head_end = buffers[c].find("\r\n\r\n");
                if (head_end == std::string::npos) {
                    continue;
                }
                const int status = std::atoi(buffers[c].c_str() + 9);
                const std::size_t cl = buffers[c].find("Content-Length: ");
                const std::size_t length =
                    (cl != std::string::npos && cl < head_end) ? std::strtoul(buffers[c].c_str() + cl + 16, nullptr, 10) : 0;
                if (buffers[c].size() < head_end + 4 + length) {
                    continue;
                }
                buffers[c].erase(0, head_end + 4 + length);
                if (status >= 200 && status < 300) {
                    ++accepted;
                }
                busy[c] = false;
                --in_flight;
            }
        }
        for (const int fd : conns) {
            close(fd);
        }
        close(pep);
        publishing = false;
    });

    std::int64_t grace_end = 0;
    while (true) {
        if (!publishing && grace_end == 0) {
            grace_end = now_ns() + 3'000'000'000LL;
        }
        if (grace_end != 0 && (delivered >= accepted || now_ns() > grace_end)) {
            break;
        }
        epoll_event events[256];
        const int n = epoll_wait(ep, events, 256, 10);
        const std::int64_t arrived = now_ns();
        for (int k = 0; k < n; ++k) {
            const std::uint32_t i = events[k].data.u32;
            char chunk[65536];
            const ssize_t got = read(fds[i], chunk, sizeof(chunk));
            if (got <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], nullptr);
                continue;
            }
            readers[i].feed(chunk, static_cast<std::size_t>(got), [&](const char* data, std::size_t len) {
                const long long seq = number_after(data, len, "\"seq\":");
                const long long t = number_after(data, len, "\"t\":");
                if (seq < 0 || t < 0 || seq >= capacity) {
                    return;  // init, heartbeat or another event of ours
                }
                if (seen[static_cast<std::size_t>(seq)]) {
                    ++duplicates;
                    return;
                }
                seen[static_cast<std::size_t>(seq)] = 1;
                ++delivered;
                latencies.push_back(arrived - t);
            });
        }
    }
    publisher.join();
    const double elapsed = static_cast<double>(now_ns() - publish_started) / 1e9;
    for (const int fd : fds) {
        close(fd);
    }
    close(ep);
    // The run's sessions and channels go, so later runs measure against
    // the same zone, not one filling up with finished runs' rings.
    const int cleanup = connect_local(opt.port);
    pipelined(cleanup, opt.streams, 0, [&](long long i) {
        return api.mcp ? "DELETE /mcp HTTP/1.1\r\nHost: bench\r\nMcp-Session-Id: " + api.session(static_cast<int>(i)) + "\r\n\r\n"
                       : "DELETE /nchan/pub?id=c" + api.run + "-" + std::to_string(i) + " HTTP/1.1\r\nHost: bench\r\n\r\n";
    }, "cleaning up");
    close(cleanup);
    const long long lost = accepted - delivered;
    std::printf("{\"target\":\"%s\",\"streams\":%d,\"rate\":%d,\"accepted\":%lld,\"delivered\":%lld,\"lost\":%lld,"
                "\"duplicates\":%lld,\"delivered_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
                opt.target.c_str(), opt.streams, opt.rate, accepted.load(), delivered, lost, duplicates,
                static_cast<double>(delivered) / std::min(elapsed, opt.seconds + 3.0), percentile(latencies, 0.5),
                percentile(latencies, 0.99));
    return 0;
}

// What this machine's loopback TCP needs to move `bytes` to a fresh
// connection, request to last byte, with no nginx in between (median of
// `runs`): the floor under any replay figure.
double loopback_floor_us(std::size_t bytes, int runs)
{
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listener, 16) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        throw std::runtime_error("floor: cannot listen");
    }
    std::thread server([&] {
        const std::string data(bytes, 'x');
        for (int run = 0; run < runs; ++run) {
            const int c = accept(listener, nullptr, nullptr);
            char request[256];
            if (c < 0 || read(c, request, sizeof(request)) <= 0) {
                break;
            }
            write_all(c, data);
            close(c);
        }
    });
    std::vector<std::int64_t> times;
    for (int run = 0; run < runs; ++run) {
        const std::int64_t t0 = now_ns();
        const int c = connect_local(ntohs(addr.sin_port));
        write_all(c, "GET / HTTP/1.1\r\n\r\n");
        std::size_t got = 0;
        char chunk[65536];
        while (got < bytes) {
            const ssize_t n = read(c, chunk, sizeof(chunk));
            if (n <= 0) {
                break;
            }
            got += static_cast<std::size_t>(n);
        }
        times.push_back(now_ns() - t0);
        close(c);
    }
    server.join();
    close(listener);
    return percentile(times, 0.5);
}

// Times `opt.runs` GETs of `sid` on `path` from `last_event_id`, each from
// its connect to the end of the event that `marker` starts.
std::vector<std::int64_t> time_replays(const options& opt, const std::string& path, const std::string& sid,
                                       const std::string& last_event_id, const std::string& marker,
                                       std::size_t& replay_bytes)
{
    std::vector<std::int64_t> times;
    for (int run = 0; run < opt.runs; ++run) {
        const std::int64_t t0 = now_ns();
        const int s = connect_local(opt.port);
        // A replay that stalls fails the run instead of hanging the bench.
        const timeval limit{10, 0};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
        write_all(s, "GET " + path + " HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\nMcp-Session-Id: " + sid +
                         "\r\nLast-Event-ID: " + last_event_id + "\r\n\r\n");
        // Scans only what arrived since the last read (the client must not
        // be the slow part of what it measures).
        std::string got;
        got.reserve(1 << 20);
        std::size_t found = std::string::npos;
        std::size_t end_scan = 0;
        for (;;) {
            char chunk[65536];
            const ssize_t n = read(s, chunk, sizeof(chunk));
            if (n <= 0) {
                throw std::runtime_error(n == 0 ? "replay stream closed early" : "replay stalled for 10 s");
            }
            const std::size_t before = got.size();
            got.append(chunk, static_cast<std::size_t>(n));
            if (found == std::string::npos) {
                found = got.find(marker, before >= marker.size() ? before - marker.size() : 0);
                end_scan = found;
            }
            if (found != std::string::npos) {
                const std::size_t end = got.find("\n\n", end_scan);
                if (end != std::string::npos) {
                    break;
                }
                end_scan = got.size() - 1;
            }
        }
        times.push_back(now_ns() - t0);
        replay_bytes = got.size();
        close(s);
    }
    return times;
}

// A POST stream recorded by nginx (issue 13): one POST whose backend
// answers with `opt.events` events, then resumes of it from its priming id.
int run_resume(const options& opt)
{
    const std::string sid = opt.prefix + "7";
    int fd = connect_local(opt.port);
    write_all(fd, "POST " + opt.path + " HTTP/1.1\r\nHost: bench\r\nMcp-Session-Id: " + sid +
                      "\r\nAccept: application/json, text/event-stream\r\nConnection: close\r\n"
                      "Content-Length: 2\r\n\r\n{}");
    std::string answer;
    for (char chunk[65536];;) {
        const ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0) {
            break;
        }
        answer.append(chunk, static_cast<std::size_t>(n));
    }
    close(fd);
    const std::size_t at = answer.find(".1\n");
    const std::size_t id = answer.rfind("id: ", at);
    if (at == std::string::npos || id == std::string::npos) {
        throw std::runtime_error("the POST's answer carries no P.1 id");
    }
    const std::string stream = answer.substr(id + 4, at - id - 4);
    std::size_t replay_bytes = 0;
    std::vector<std::int64_t> times = time_replays(
        opt, opt.path, sid, stream + ".0", "id: " + stream + "." + std::to_string(opt.events) + "\n", replay_bytes);
    std::vector<std::int64_t> copy = times;
    std::printf("{\"events\":%d,\"runs\":%d,\"bytes\":%zu,\"median_us\":%.1f,\"p90_us\":%.1f}\n", opt.events,
                opt.runs, replay_bytes, percentile(copy, 0.5), percentile(times, 0.9));
    return 0;
}

int run_replay(const options& opt)
{
    // A session of its own per run: a run again on "replay" would find the
    // earlier runs' events in its ring and measure a different replay.
    const std::string sid = "replay-" + std::to_string(getpid());
    int fd = connect_local(opt.port);
    std::string buffer;
    write_all(fd, "POST /mcp?sid=" + sid + " HTTP/1.1\r\nHost: bench\r\nContent-Length: 2\r\n\r\n{}");
    if (read_response(fd, buffer) != 200) {
        throw std::runtime_error("creating the replay session failed");
    }
    for (int i = 0; i < opt.events; ++i) {
        write_all(fd, target_api::publish_to_session("/mcp", sid, payload(i, 0, opt.size)));
        if (read_response(fd, buffer) != 202) {
            throw std::runtime_error("publishing a replay event failed");
        }
    }
    close(fd);

    const std::string marker = "id: " + std::to_string(opt.events) + "\n";
    std::size_t replay_bytes = 0;
    std::vector<std::int64_t> times = time_replays(opt, "/mcp", sid, "0", marker, replay_bytes);
    std::vector<std::int64_t> copy = times;
    const double floor_us = loopback_floor_us(replay_bytes, opt.runs);
    std::printf("{\"events\":%d,\"size\":%d,\"runs\":%d,\"bytes\":%zu,\"median_us\":%.1f,\"p90_us\":%.1f,"
                "\"floor_us\":%.1f}\n",
                opt.events, opt.size, opt.runs, replay_bytes, percentile(copy, 0.5), percentile(times, 0.9), floor_us);
    return 0;
}

std::string create_request(const options& opt, long long i)
{
    return "POST " + opt.path + "?sid=" + opt.prefix + std::to_string(i) +
           " HTTP/1.1\r\nHost: bench\r\nContent-Length: 2\r\n\r\n{}";
}

// Creates `count` sessions through the learn path.
int run_populate(const options& opt)
{
    const int fd = connect_local(opt.port);
    pipelined(fd, opt.count, 200, [&](long long i) { return create_request(opt, i); }, "populate");
    close(fd);
    std::printf("{\"populated\":%lld}\n", opt.count);
    return 0;
}

// Creates `count` sessions and publishes `events` events of `size` bytes
// to each through PATH/publish: rings as full as a busy session's. With
// --target nchan: the same events to `count` nchan channels (made by
// their first message).
int run_fill(const options& opt)
{
    const bool mcp = opt.target == "mcp";
    const int fd = connect_local(opt.port);
    if (mcp) {
        pipelined(fd, opt.count, 200, [&](long long i) { return create_request(opt, i); }, "fill: create");
    }
    const long long per_session = opt.events;
    pipelined(fd, opt.count * per_session, mcp ? 202 : 0, [&](long long k) {
        const std::string id = opt.prefix + std::to_string(k / per_session);
        const std::string body = payload(k % per_session, 0, opt.size);
        return mcp ? target_api::publish_to_session(opt.path, id, body)
                   : "POST /nchan/pub?id=" + id + " HTTP/1.1\r\nHost: bench\r\n" + target_api::body_part(body);
    }, "fill: publish");
    close(fd);
    std::printf("{\"sessions\":%lld,\"events\":%lld,\"payload_bytes\":%zu}\n", opt.count, opt.count * per_session,
                payload(0, 0, opt.size).size());
    return 0;
}

options parse(int argc, char** argv)
{
    options opt;
    if (argc < 2) {
        throw std::runtime_error("usage: sse_bench deliver|replay [--option value]...");
    }
    opt.mode = argv[1];
    std::map<std::string, std::string> values;
    for (int i = 2; i + 1 < argc; i += 2) {
        values[argv[i]] = argv[i + 1];
    }
    const auto number = [&](const char* name, auto fallback) {
        const auto it = values.find(name);
        return it == values.end() ? fallback : static_cast<decltype(fallback)>(std::atof(it->second.c_str()));
    };
    if (values.count("--target")) {
        opt.target = values["--target"];
    }
    if (values.count("--path")) {
        opt.path = values["--path"];
    }
    if (values.count("--prefix")) {
        opt.prefix = values["--prefix"];
    }
    opt.count = number("--count", 0LL);
    opt.port = number("--port", 0);
    opt.publish_port = number("--publish-port", opt.port);
    opt.streams = number("--streams", opt.streams);
    opt.rate = number("--rate", opt.rate);
    opt.seconds = number("--seconds", opt.seconds);
    opt.events = number("--events", opt.events);
    opt.size = number("--size", opt.size);
    opt.runs = number("--runs", opt.runs);
    opt.publishers = number("--publishers", opt.publishers);
    return opt;
}

}  // namespace

int main(int argc, char** argv)
{
    try {
        const options opt = parse(argc, argv);
        if (opt.mode == "deliver") {
            return run_deliver(opt);
        }
        if (opt.mode == "replay") {
            return run_replay(opt);
        }
        if (opt.mode == "resume") {
            return run_resume(opt);
        }
        if (opt.mode == "populate") {
            return run_populate(opt);
        }
        if (opt.mode == "fill") {
            return run_fill(opt);
        }
        throw std::runtime_error("unknown mode " + opt.mode);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sse_bench: %s\n", e.what());
        return 1;
    }
}
