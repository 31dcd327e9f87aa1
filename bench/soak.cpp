// Load soak for ./build.sh soak: drives a pool of sessions through nginx
// with a mix of initialize, requests, publishes, deletes and short streams
// from several threads, while long-lived streams on their own sessions
// count every event published to them. Prints one JSON line of totals.
//
//   soak --port P --sessions 10000 --seconds 60 --threads 4 --streams 200
//
// Each thread owns the sessions whose index it is congruent to, so every
// expectation (live => 200/202, deleted => 404) is exact, not statistical.
#include "bench_client.hpp"

#include <sys/epoll.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace bench;

struct options {
    int port = 0;
    int sessions = 10000;
    double seconds = 60;
    int threads = 4;
    int streams = 200;
};

struct totals {
    std::atomic<long long> requests{0};
    std::atomic<long long> status_2xx{0};
    std::atomic<long long> status_404{0};
    std::atomic<long long> status_other_4xx{0};
    std::atomic<long long> status_5xx{0};
    std::atomic<long long> lost{0};          // a live session answered 404
    std::atomic<long long> resurrected{0};   // a deleted session answered other than 404
    std::atomic<long long> errors{0};        // connections that failed
    std::atomic<long long> initializes{0};
    std::atomic<long long> deletes{0};
    std::atomic<long long> publishes{0};
    std::atomic<long long> short_streams{0};
};

std::string post(const std::string& target, const std::string& sid, const std::string& body)
{
    std::string r = "POST " + target + " HTTP/1.1\r\nHost: soak\r\n";
    if (!sid.empty()) {
        r += "Mcp-Session-Id: " + sid + "\r\n";
    }
    return r + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string stream_request(const std::string& sid)
{
    return "GET /mcp HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\nMcp-Session-Id: " + sid + "\r\n\r\n";
}

// One keep-alive connection that reconnects after any failure.
class client {
public:
    client(int port, totals& t) : port_(port), t_(t) {}
    ~client() { drop(); }

    int exchange(const std::string& request)
    {
        for (int attempt = 0; attempt < 2; ++attempt) {
            try {
                if (fd_ < 0) {
                    fd_ = connect_local(port_);
                }
                write_all(fd_, request);
                const int status = read_response(fd_, buffer_);
                count(status);
                return status;
            } catch (const std::exception&) {
                ++t_.errors;
                drop();
            }
        }
        return 0;
    }

private:
    void count(int status)
    {
        ++t_.requests;
        if (status >= 200 && status < 300) {
            ++t_.status_2xx;
        } else if (status == 404) {
            ++t_.status_404;
        } else if (status >= 500) {
            ++t_.status_5xx;
        } else {
            ++t_.status_other_4xx;
        }
    }
    void drop()
    {
        if (fd_ >= 0) {
            close(fd_);
        }
        fd_ = -1;
        buffer_.clear();
    }

    int port_;
    totals& t_;
    int fd_ = -1;
    std::string buffer_;
};

// Opens a stream, waits for its init event, closes it.
bool short_stream(int port, const std::string& sid)
{
    const int fd = connect_local(port);
    write_all(fd, stream_request(sid));
    stream_reader reader;
    bool got_init = false;
    const std::int64_t deadline = now_ns() + 5'000'000'000LL;
    char chunk[16384];
    while (!got_init && now_ns() < deadline) {
        const ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0) {
            break;
        }
        reader.feed(chunk, static_cast<std::size_t>(n), [&](const char* data, std::size_t len) {
            got_init |= std::string_view(data, len).find("connected_at") != std::string_view::npos;
        });
    }
    close(fd);
    return got_init;
}

enum class state : char { none, live, deleted };

void drive(const options& opt, int index, totals& t, std::atomic<bool>& stop, std::vector<std::atomic<long long>>& sent_to_hold)
{
    client c(opt.port, t);
    std::mt19937_64 random(static_cast<std::uint64_t>(index) * 7919 + 1);
    std::vector<state> states;
    std::vector<int> generation;
    for (int i = index; i < opt.sessions; i += opt.threads) {
        states.push_back(state::none);
        generation.push_back(0);
    }
    const auto id_of = [&](std::size_t k) {
        return "soak-" + std::to_string(index + static_cast<int>(k) * opt.threads) + "-" + std::to_string(generation[k]);
    };
    while (!stop.load(std::memory_order_relaxed)) {
        const std::size_t k = random() % states.size();
        const unsigned roll = static_cast<unsigned>(random() % 100);
        if (opt.streams > 0 && roll < 10) {
            // Publish to a long-lived stream's session; each 202 must arrive.
            const int h = static_cast<int>(random() % static_cast<unsigned>(opt.streams));
            if (c.exchange(post("/mcp/publish", "hold-" + std::to_string(h), "{\"jsonrpc\":\"2.0\",\"method\":\"soak\"}")) == 202) {
                ++sent_to_hold[static_cast<std::size_t>(h)];
            }
            continue;
        }
        switch (states[k]) {
        case state::none:
            if (c.exchange(post("/mcp?sid=" + id_of(k), "", "{}")) == 200) {
                states[k] = state::live;
                ++t.initializes;
            }
            break;
        case state::deleted:
            if (roll < 50) {
                if (c.exchange(post("/mcp", id_of(k), "{}")) != 404) {
                    ++t.resurrected;
                }
            } else {
                ++generation[k];
                states[k] = state::none;
            }
            break;
        case state::live: {
            int status = 0;
            if (roll < 60) {
                status = c.exchange(post("/mcp", id_of(k), "{}"));
            } else if (roll < 80) {
                status = c.exchange(post("/mcp/publish", id_of(k), "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}"));
                ++t.publishes;
            } else if (roll < 88) {
                status = c.exchange("DELETE /mcp HTTP/1.1\r\nHost: soak\r\nMcp-Session-Id: " + id_of(k) + "\r\n\r\n");
                if (status == 200) {
                    states[k] = state::deleted;
                    ++t.deletes;
                }
            } else {
                try {
                    status = short_stream(opt.port, id_of(k)) ? 200 : 0;
                    ++t.short_streams;
                } catch (const std::exception&) {
                    ++t.errors;
                }
            }
            if (status == 404) {
                ++t.lost;
            }
            break;
        }
        }
    }
    // Leave the zone as found: end every session still live.
    for (std::size_t k = 0; k < states.size(); ++k) {
        if (states[k] == state::live) {
            c.exchange("DELETE /mcp HTTP/1.1\r\nHost: soak\r\nMcp-Session-Id: " + id_of(k) + "\r\n\r\n");
        }
    }
}

// Long-lived streams, read with epoll; counts the events each receives.
struct holder {
    std::vector<int> fds;
    std::vector<stream_reader> readers;
    std::vector<long long> received;
};

void hold_streams(const options& opt, holder& h, std::atomic<bool>& stop)
{
    const int ep = epoll_create1(0);
    for (int i = 0; i < opt.streams; ++i) {
        const int fd = connect_local(opt.port);
        write_all(fd, stream_request("hold-" + std::to_string(i)));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<std::uint32_t>(i);
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        h.fds.push_back(fd);
    }
    h.readers.resize(h.fds.size());
    h.received.assign(h.fds.size(), 0);
    epoll_event events[256];
    char chunk[65536];
    while (!stop.load(std::memory_order_relaxed)) {
        const int n = epoll_wait(ep, events, 256, 100);
        for (int e = 0; e < n; ++e) {
            const std::uint32_t i = events[e].data.u32;
            const ssize_t got = read(h.fds[i], chunk, sizeof(chunk));
            if (got <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, h.fds[i], nullptr);
                continue;
            }
            h.readers[i].feed(chunk, static_cast<std::size_t>(got), [&](const char* data, std::size_t len) {
                h.received[i] += std::string_view(data, len) == "{\"soak\":1}" ? 1 : 0;
            });
        }
    }
    close(ep);
}

options parse(int argc, char** argv)
{
    options opt;
    std::map<std::string, double> values;
    for (int i = 1; i + 1 < argc; i += 2) {
        values[argv[i]] = std::atof(argv[i + 1]);
    }
    const auto take = [&](const char* name, auto& field) {
        if (values.count(name)) {
            field = static_cast<std::remove_reference_t<decltype(field)>>(values[name]);
        }
    };
    take("--port", opt.port);
    take("--sessions", opt.sessions);
    take("--seconds", opt.seconds);
    take("--threads", opt.threads);
    take("--streams", opt.streams);
    if (opt.port == 0 || opt.threads < 1 || opt.sessions < opt.threads) {
        throw std::runtime_error("usage: soak --port P [--sessions N] [--seconds S] [--threads T] [--streams H]");
    }
    return opt;
}

}  // namespace

int main(int argc, char** argv)
{
    try {
        const options opt = parse(argc, argv);
        raise_fd_limit();
        totals t;
        std::vector<std::atomic<long long>> sent_to_hold(static_cast<std::size_t>(opt.streams));
        {
            client setup(opt.port, t);
            for (int i = 0; i < opt.streams; ++i) {
                setup.exchange(post("/mcp?sid=hold-" + std::to_string(i), "", "{}"));
            }
        }
        holder h;
        std::atomic<bool> stop_holding{false};
        std::thread holding(hold_streams, std::cref(opt), std::ref(h), std::ref(stop_holding));
        std::atomic<bool> stop_driving{false};
        std::vector<std::thread> drivers;
        const std::int64_t started = now_ns();
        for (int i = 0; i < opt.threads; ++i) {
            drivers.emplace_back(drive, std::cref(opt), i, std::ref(t), std::ref(stop_driving), std::ref(sent_to_hold));
        }
        std::this_thread::sleep_for(std::chrono::duration<double>(opt.seconds));  // the soak's length, not a wait for a condition
        stop_driving = true;
        for (std::thread& d : drivers) {
            d.join();
        }
        // Give the last events time to arrive: poll until every stream has
        // what was accepted for it, or 5 s pass.
        const std::int64_t deadline = now_ns() + 5'000'000'000LL;
        const auto missing = [&] {
            long long m = 0;
            for (std::size_t i = 0; i < h.received.size(); ++i) {
                m += std::max(0LL, sent_to_hold[i].load() - h.received[i]);
            }
            return m;
        };
        while (missing() > 0 && now_ns() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        stop_holding = true;
        holding.join();
        long long hold_sent = 0, hold_received = 0;
        for (std::size_t i = 0; i < h.received.size(); ++i) {
            hold_sent += sent_to_hold[i].load();
            hold_received += h.received[i];
        }
        const double secs = static_cast<double>(now_ns() - started) / 1e9;
        {
            client cleanup(opt.port, t);
            for (int i = 0; i < opt.streams; ++i) {
                cleanup.exchange("DELETE /mcp HTTP/1.1\r\nHost: soak\r\nMcp-Session-Id: hold-" + std::to_string(i) + "\r\n\r\n");
            }
        }
        for (const int fd : h.fds) {
            close(fd);
        }
        std::printf("{\"seconds\":%.1f,\"requests\":%lld,\"per_s\":%.0f,\"2xx\":%lld,\"404\":%lld,\"other_4xx\":%lld,"
                    "\"5xx\":%lld,\"lost\":%lld,\"resurrected\":%lld,\"connection_errors\":%lld,\"initializes\":%lld,"
                    "\"deletes\":%lld,\"publishes\":%lld,\"short_streams\":%lld,\"held_streams\":%d,"
                    "\"held_events_accepted\":%lld,\"held_events_received\":%lld}\n",
                    secs, t.requests.load(), static_cast<double>(t.requests.load()) / secs, t.status_2xx.load(),
                    t.status_404.load(), t.status_other_4xx.load(), t.status_5xx.load(), t.lost.load(),
                    t.resurrected.load(), t.errors.load(), t.initializes.load(), t.deletes.load(), t.publishes.load(),
                    t.short_streams.load(), opt.streams, hold_sent, hold_received);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "soak: %s\n", e.what());
        return 1;
    }
}
