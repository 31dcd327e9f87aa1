// SSE encoding: whatever the payload holds, a client parsing the stream by
// the WHATWG EventSource rules sees exactly the events that were appended,
// with their ids, names and data (line breaks normalised to LF).
#include "fuzz_check.hpp"
#include "mcp_session/event.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace mcp_session;

namespace {

struct parsed_event {
    std::string id;
    std::string type;
    std::string data;
};

// The "event stream interpretation" of the HTML standard (§9.2.6), on
// bytes. A trailing line without its line break is never processed.
std::vector<parsed_event> parse_stream(std::string_view stream, bool& complete)
{
    std::vector<parsed_event> events;
    std::string last_id;
    std::string type;
    std::string data;
    std::size_t pos = 0;
    complete = true;
    while (pos < stream.size()) {
        const std::size_t end = stream.find_first_of("\r\n", pos);
        if (end == std::string_view::npos) {
            complete = false;
            break;
        }
        const std::string_view line = stream.substr(pos, end - pos);
        pos = end + 1;
        if (stream[end] == '\r' && pos < stream.size() && stream[pos] == '\n') {
            ++pos;
        }
        if (line.empty()) {
            if (!data.empty()) {
                data.pop_back();
                events.push_back({last_id, type.empty() ? "message" : type, data});
            }
            type.clear();
            data.clear();
            continue;
        }
        if (line.front() == ':') {
            continue;
        }
        const std::size_t colon = line.find(':');
        const std::string_view field = line.substr(0, colon);
        std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
        if (field == "event") {
            type = std::string(value);
        } else if (field == "data") {
            data.append(value);
            data += '\n';
        } else if (field == "id") {
            if (value.find('\0') == std::string_view::npos) {
                last_id = std::string(value);
            }
        }
    }
    return events;
}

std::string normalised_lines(std::string_view data)
{
    std::string out;
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i] == '\r') {
            out += '\n';
            if (i + 1 < data.size() && data[i + 1] == '\n') {
                ++i;
            }
        } else {
            out += data[i];
        }
    }
    return out;
}

struct appended {
    std::uint64_t id;
    event_kind kind;
    std::string data;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider input(bytes, size);
    std::vector<appended> sent;
    const int count = input.ConsumeIntegralInRange(1, 3);
    for (int i = 0; i < count; ++i) {
        const auto id = input.ConsumeIntegral<std::uint64_t>();
        const auto kind = static_cast<event_kind>(input.ConsumeIntegralInRange<std::uint8_t>(0, 4));
        std::string data = i + 1 == count ? input.ConsumeRemainingBytesAsString() : input.ConsumeRandomLengthString(256);
        sent.push_back({id, kind, std::move(data)});
    }

    std::string stream;
    for (const appended& e : sent) {
        const std::string before = stream;
        append_sse_event(stream, e.id, e.kind, e.data);
        FUZZ_CHECK(stream.compare(0, before.size(), before) == 0);  // appends, never rewrites
        FUZZ_CHECK(stream.size() >= 2 && stream.compare(stream.size() - 2, 2, "\n\n") == 0);
    }
    // Payload line breaks all become field boundaries: no CR reaches the wire,
    // and a blank line (an event's end) appears only where an event ends.
    FUZZ_CHECK(stream.find('\r') == std::string::npos);
    std::size_t blank_lines = 0;
    for (std::size_t at = stream.find("\n\n"); at != std::string::npos; at = stream.find("\n\n", at + 1)) {
        ++blank_lines;
    }
    FUZZ_CHECK(blank_lines == sent.size());

    bool complete = false;
    const std::vector<parsed_event> events = parse_stream(stream, complete);
    FUZZ_CHECK(complete);
    FUZZ_CHECK(events.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        FUZZ_CHECK(events[i].id == std::to_string(sent[i].id));
        FUZZ_CHECK(events[i].type == kind_name(sent[i].kind));
        FUZZ_CHECK(events[i].data == normalised_lines(sent[i].data));
    }
    return 0;
}
