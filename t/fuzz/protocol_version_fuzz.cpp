// MCP-Protocol-Version classification: which era a request speaks decides
// whether the session layer touches it at all, so every header value must
// land in exactly the era its text says.
#include "fuzz_check.hpp"
#include "mcp_session/protocol.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace mcp_session;

namespace {

constexpr std::string_view candidates[] = {"2025-03-26", "2025-06-18", "2025-11-25", "2024-11-05",
                                           "2026-07-28", "2099-01-01", "2025-6-18",  ""};

bool syntax_reference(std::string_view v)
{
    if (v.size() != 10) {
        return false;
    }
    for (std::size_t i = 0; i < v.size(); ++i) {
        const bool dash = i == 4 || i == 7;
        if (dash ? v[i] != '-' : (v[i] < '0' || v[i] > '9')) {
            return false;
        }
    }
    return true;
}

protocol_era era_reference(std::string_view v, const std::vector<std::string>& accepted)
{
    if (!syntax_reference(v)) {
        return protocol_era::malformed;
    }
    if (v >= first_modern_version) {
        return protocol_era::modern;
    }
    const bool known = v.compare("2024-11-05") >= 0;
    const bool allowed = accepted.empty() || std::find(accepted.begin(), accepted.end(), v) != accepted.end();
    return known && allowed ? protocol_era::session : protocol_era::unsupported;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider input(bytes, size);
    std::vector<std::string> accepted;
    const int listed = input.ConsumeIntegralInRange(0, 3);
    for (int i = 0; i < listed; ++i) {
        accepted.emplace_back(input.ConsumeBool() ? std::string(input.PickValueInArray(candidates))
                                                  : input.ConsumeRandomLengthString(16));
    }
    const bool present = input.ConsumeBool();
    const std::string header = input.ConsumeRemainingBytesAsString();

    const std::optional<std::string_view> given =
        present ? std::optional<std::string_view>(header) : std::nullopt;
    const protocol_verdict verdict = classify_protocol_version(given, accepted);
    const std::string_view expected_version = present ? fuzz_reference::trim_ows(header) : default_version;
    FUZZ_CHECK(verdict.version == expected_version);
    FUZZ_CHECK(is_version_syntax(verdict.version) == syntax_reference(verdict.version));
    FUZZ_CHECK(is_version_syntax(header) == syntax_reference(header));
    FUZZ_CHECK(verdict.era == era_reference(verdict.version, accepted));
    if (verdict.era == protocol_era::session) {
        FUZZ_CHECK(verdict.version < first_modern_version);
    }
    // Optional whitespace around the header value changes nothing.
    const std::string padded = " \t" + header + "\t ";
    const protocol_verdict again = classify_protocol_version(std::string_view(padded), accepted);
    FUZZ_CHECK(!present || (again.era == verdict.era && again.version == verdict.version));
    // An operator's list only narrows: it can turn session into unsupported, never more.
    const protocol_verdict unrestricted = classify_protocol_version(given);
    if (verdict.era == protocol_era::session) {
        FUZZ_CHECK(unrestricted.era == protocol_era::session);
    }
    if (unrestricted.era != protocol_era::session) {
        FUZZ_CHECK(verdict.era == unrestricted.era);
    }
    return 0;
}
