// The POST stream's SSE relay: where the backend's bytes are split never
// changes what the client gets or what is recorded; recorded events replay
// byte for byte as they went live; the relay holds at most the event size
// limit; it turns into a pass-through exactly at the first byte that is
// not SSE text; and its response verdict agrees with a full JSON parse.
#include "fuzz_check.hpp"
#include "mcp_session/sse_relay.hpp"
#include "utf8.hpp"

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace mcp_session;

namespace {

constexpr std::uint64_t stream_number = 12;
constexpr std::size_t held_slack = 8;  // a BOM and "data" may wait for the byte that decides them

struct outcome {
    std::string out;
    relayed_batch events;
    bool passthrough = false;
    bool responded = false;
    std::size_t oversized = 0;
    std::uint64_t next_index = 0;
};

outcome run(std::string_view input, const std::vector<std::size_t>& cuts, bool priming, std::size_t max)
{
    sse_relay relay(stream_number, priming, max);
    outcome o;
    std::size_t at = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t to = i < cuts.size() ? cuts[i] : input.size();
        relay.feed(input.substr(at, to - at), o.out, o.events);
        FUZZ_CHECK(relay.held() <= max + held_slack);
        at = to;
    }
    relay.finish(o.out);
    FUZZ_CHECK(relay.held() == 0);
    o.passthrough = relay.passthrough();
    o.responded = relay.responded();
    o.oversized = relay.oversized();
    o.next_index = relay.next_index();
    return o;
}

void check_same(const outcome& a, const outcome& b)
{
    FUZZ_CHECK(a.out == b.out);
    FUZZ_CHECK(a.passthrough == b.passthrough);
    FUZZ_CHECK(a.responded == b.responded);
    FUZZ_CHECK(a.oversized == b.oversized);
    FUZZ_CHECK(a.next_index == b.next_index);
    FUZZ_CHECK(a.events.size() == b.events.size());
    for (std::size_t i = 0; i < a.events.size(); ++i) {
        FUZZ_CHECK(a.events[i].index == b.events[i].index);
        FUZZ_CHECK(a.events[i].fields == b.events[i].fields);
        FUZZ_CHECK(a.events[i].response == b.events[i].response);
    }
}

// The first byte that is not SSE text (a NUL, or not UTF-8); npos when
// there is none (a sequence cut by the end of the stream is never judged).
std::size_t first_invalid(std::string_view s)
{
    bool cut = false;
    return std::min(s.find('\0'), utf8_error_at(s, cut));
}

// The event's data as a client joins it, and whether a DOM says it is a response.
std::optional<bool> reference_response(const std::string& fields)
{
    std::string data;
    bool any = false;
    std::size_t start = 0;
    while (start < fields.size()) {
        const std::size_t end = fields.find('\n', start);
        const std::string_view line(fields.data() + start, end - start);
        start = end + 1;
        const std::size_t colon = line.find(':');
        if (line.substr(0, colon) != "data") {
            continue;
        }
        std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
        if (any) {
            data += '\n';
        }
        any = true;
        data += value;
    }
    // nlohmann skips a leading BOM and refuses lone surrogate escapes, JSON.parse neither: not compared.
    if (data.find("\\u") != std::string::npos || data.find("\xEF\xBB\xBF") != std::string::npos) {
        return std::nullopt;
    }
    const nlohmann::json doc = nlohmann::json::parse(data, nullptr, false);
    if (doc.is_discarded()) {
        return false;
    }
    const auto message = [](const nlohmann::json& m) {
        return m.is_object() && m.contains("id") && (m.contains("result") || m.contains("error")) && !m.contains("method");
    };
    if (doc.is_array()) {
        if (doc.empty()) {
            return false;
        }
        for (const auto& m : doc) {
            if (!message(m)) {
                return false;
            }
        }
        return true;
    }
    return message(doc);
}

void check_events(std::string_view input, const outcome& o, std::size_t max)
{
    std::size_t at = 0;
    std::uint64_t last = 0;
    for (const relayed_event& e : o.events) {
        FUZZ_CHECK(e.index > last && e.index < o.next_index);
        last = e.index;
        FUZZ_CHECK(e.fields.size() <= max);
        FUZZ_CHECK(e.fields.find("\n\n") == std::string::npos);
        FUZZ_CHECK(e.fields.empty() || (e.fields.back() == '\n' && e.fields.front() != '\n'));
        FUZZ_CHECK(e.fields.find('\r') == std::string::npos);
        for (std::size_t start = 0; start < e.fields.size();) {
            const std::size_t end = e.fields.find('\n', start);
            const std::string_view line(e.fields.data() + start, end - start);
            FUZZ_CHECK(line.substr(0, line.find(':')) != "id");
            start = end + 1;
        }
        // What the ring replays is what went out live, in order.
        const std::string replay =
            "id: " + std::to_string(stream_number) + "." + std::to_string(e.index) + "\n" + e.fields + "\n";
        const std::size_t found = o.out.find(replay, at);
        FUZZ_CHECK(found != std::string::npos);
        at = found + replay.size();
        if (const auto expected = reference_response(e.fields)) {
            FUZZ_CHECK(e.response == *expected);
        }
    }
    if (!o.events.empty() && o.events.back().response) {
        FUZZ_CHECK(o.responded);
    }
    // Pass-through from the first byte that is not SSE text, exactly.
    const std::size_t invalid = first_invalid(input);
    FUZZ_CHECK(o.passthrough == (invalid != std::string_view::npos));
    if (o.passthrough) {
        const std::string_view rest = input.substr(invalid);
        FUZZ_CHECK(o.out.size() >= rest.size() && std::string_view(o.out).substr(o.out.size() - rest.size()) == rest);
    } else if (o.out.find('\r') != std::string::npos) {
        FUZZ_CHECK(false);  // every line end the client gets is LF
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider provider(bytes, size);
    const bool priming = provider.ConsumeBool();
    const std::size_t max = provider.ConsumeBool() ? provider.ConsumeIntegralInRange<std::size_t>(0, 16)
                                                    : provider.ConsumeIntegralInRange<std::size_t>(0, 400);
    const std::size_t single = provider.ConsumeIntegral<std::uint16_t>();
    std::uint64_t seed = provider.ConsumeIntegral<std::uint64_t>();
    const std::string input = provider.ConsumeRemainingBytesAsString();

    const outcome whole = run(input, {}, priming, max);
    check_events(input, whole, max);

    check_same(run(input, {single % (input.size() + 1)}, priming, max), whole);

    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < input.size(); ++i) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        if ((seed >> 61) == 0) {
            cuts.push_back(i);
        }
    }
    check_same(run(input, cuts, priming, max), whole);
    if (input.size() <= 512) {
        std::vector<std::size_t> every;
        for (std::size_t i = 1; i < input.size(); ++i) {
            every.push_back(i);
        }
        check_same(run(input, every, priming, max), whole);
    }
    return 0;
}
