// The answer watch: whatever a backend sends, and wherever nginx splits
// it into buffers, the counts are the same as for the body in one piece,
// and never more than the body has objects. Run under ASan/UBSan, so a
// read past a piece or an unbounded copy aborts.
#include "fuzz_check.hpp"
#include "mcp_session/answer_watch.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <string>

using namespace mcp_session;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    FuzzedDataProvider input(data, size);
    const auto form = input.ConsumeBool() ? answer_watch::form::json : answer_watch::form::event_stream;
    const bool tools_call = input.ConsumeBool();
    const std::string splits = input.ConsumeBytesAsString(input.ConsumeIntegralInRange<std::size_t>(0, 16));
    const std::string body = input.ConsumeRemainingBytesAsString();

    answer_watch whole(form, tools_call);
    whole.feed(body, true);
    FUZZ_CHECK(whole.done());

    answer_watch pieces(form, tools_call);
    std::size_t at = 0;
    for (std::size_t i = 0; at < body.size() && !pieces.done(); ++i) {
        const std::size_t step = i < splits.size() ? 1 + static_cast<unsigned char>(splits[i]) : body.size();
        const std::size_t n = std::min(step, body.size() - at);
        pieces.feed(std::string_view(body).substr(at, n), at + n == body.size());
        at += n;
    }
    if (body.empty()) {
        pieces.feed({}, true);
    }
    FUZZ_CHECK(pieces.counts() == whole.counts());

    std::uint64_t total = 0;
    for (const auto n : whole.counts()) {
        total += n;
    }
    FUZZ_CHECK(total <= static_cast<std::uint64_t>(std::count(body.begin(), body.end(), '{')));
    return 0;
}
