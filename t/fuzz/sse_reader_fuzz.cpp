// The reader of a backend's own stream: where the bytes are split never
// changes the messages, the last id or the retry; it holds bounded memory;
// no message is larger than the limit or empty.
#include "fuzz_check.hpp"
#include "mcp_session/sse_reader.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace mcp_session;

namespace {

constexpr std::size_t short_field_slack = 1024;  // the reader's bound for a line beyond the event limit

struct outcome {
    std::vector<std::string> messages;
    std::string last_id;
    std::optional<std::uint64_t> retry;
    std::size_t oversized = 0;
    std::size_t skipped = 0;
};

outcome run(std::string_view input, const std::vector<std::size_t>& cuts, std::size_t max)
{
    sse_reader reader(max);
    outcome o;
    std::size_t at = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t to = i < cuts.size() ? cuts[i] : input.size();
        reader.feed(input.substr(at, to - at), o.messages);
        FUZZ_CHECK(reader.held() <= 2 * max + short_field_slack + 1);
        at = to;
    }
    o.last_id = reader.last_event_id();
    o.retry = reader.retry_ms();
    o.oversized = reader.oversized();
    o.skipped = reader.skipped();
    for (const std::string& message : o.messages) {
        FUZZ_CHECK(!message.empty() && message.size() <= max);
    }
    return o;
}

void check_same(const outcome& a, const outcome& b)
{
    FUZZ_CHECK(a.messages == b.messages);
    FUZZ_CHECK(a.last_id == b.last_id);
    FUZZ_CHECK(a.retry == b.retry);
    FUZZ_CHECK(a.oversized == b.oversized);
    FUZZ_CHECK(a.skipped == b.skipped);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider provider(bytes, size);
    const std::size_t max = provider.ConsumeIntegralInRange<std::size_t>(1, 300);
    std::uint64_t seed = provider.ConsumeIntegral<std::uint64_t>();
    const std::string input = provider.ConsumeRemainingBytesAsString();

    const outcome whole = run(input, {}, max);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < input.size(); ++i) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        if ((seed >> 61) == 0) {
            cuts.push_back(i);
        }
    }
    check_same(run(input, cuts, max), whole);
    if (input.size() <= 512) {
        std::vector<std::size_t> every;
        for (std::size_t i = 1; i < input.size(); ++i) {
            every.push_back(i);
        }
        check_same(run(input, every, max), whole);
    }
    return 0;
}
