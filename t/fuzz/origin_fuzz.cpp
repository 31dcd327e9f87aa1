// Origin policy (DNS-rebinding protection): the host read from an Origin
// header, and whether the request may proceed. An accepted Origin's whole
// authority must be an allowed host and an optional numeric port.
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

constexpr std::string_view sample_hosts[] = {"localhost", "127.0.0.1", "[::1]", "example.com", "mcp.example.com",
                                             "http://example.com", "https://example.com:8443"};

std::string lower(std::string_view s)
{
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

std::string upper(std::string_view s)
{
    std::string out(s);
    for (char& c : out) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return out;
}

bool all_digits(std::string_view s)
{
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void check_host(std::string_view origin)
{
    const std::optional<std::string> host = origin_host(origin);
    // Same answer whatever the letter case or surrounding whitespace.
    FUZZ_CHECK(origin_host(upper(origin)) == host);
    FUZZ_CHECK(origin_host(" \t" + std::string(origin) + " ") == host);
    if (!host) {
        return;
    }
    FUZZ_CHECK(!host->empty());
    FUZZ_CHECK(*host == lower(*host));
    FUZZ_CHECK(host->find_first_of("/?#@ \t") == std::string::npos);
    if (host->front() == '[') {
        FUZZ_CHECK(host->back() == ']' && host->find(']') == host->size() - 1);
    } else {
        FUZZ_CHECK(host->find(':') == std::string::npos);
    }
    // The authority after "://" is the host, then at most ":" and digits.
    const std::string text = lower(fuzz_reference::trim_ows(origin));
    const std::size_t authority = text.find("://");
    FUZZ_CHECK(authority != std::string::npos && authority > 0);
    // ... after an RFC 3986 scheme: a letter, then letters, digits, + - .
    FUZZ_CHECK(text[0] >= 'a' && text[0] <= 'z');
    for (std::size_t i = 0; i < authority; ++i) {
        const char c = text[i];
        FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
    }
    const std::string_view rest = std::string_view(text).substr(authority + 3);
    FUZZ_CHECK(rest.substr(0, host->size()) == *host);
    const std::string_view port = rest.substr(host->size());
    FUZZ_CHECK(port.empty() || (port.size() > 1 && port.front() == ':' && all_digits(port.substr(1))));
    // Reading it back from a minimal origin gives the same host.
    FUZZ_CHECK(origin_host("http://" + *host) == host);
}

void check_allowed(std::string_view origin, const origin_policy& policy)
{
    const bool allowed = origin_allowed(origin, policy);
    FUZZ_CHECK(origin_allowed(upper(origin), policy) == allowed);
    FUZZ_CHECK(origin_allowed("\t" + std::string(origin) + "  ", policy) == allowed);
    if (policy.any) {
        FUZZ_CHECK(allowed);
        return;
    }
    const std::optional<std::string> host = origin_host(origin);
    if (!host) {
        FUZZ_CHECK(!allowed);  // "null", opaque and unparseable origins are refused
        return;
    }
    if (!policy.origins.empty()) {
        const std::string given = lower(fuzz_reference::trim_ows(origin));
        FUZZ_CHECK(allowed == (std::find(policy.origins.begin(), policy.origins.end(), given) != policy.origins.end()));
        return;
    }
    const bool known = *host == "localhost" || *host == "127.0.0.1" || *host == "[::1]" ||
                       std::find(policy.hosts.begin(), policy.hosts.end(), *host) != policy.hosts.end();
    FUZZ_CHECK(allowed == known);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider input(bytes, size);
    origin_policy policy;
    policy.any = input.ConsumeIntegralInRange(0, 15) == 0;
    const int origins = input.ConsumeIntegralInRange(0, 2);
    for (int i = 0; i < origins; ++i) {
        policy.origins.push_back(lower(input.ConsumeBool() ? std::string(input.PickValueInArray(sample_hosts))
                                                           : input.ConsumeRandomLengthString(32)));
    }
    const int hosts = input.ConsumeIntegralInRange(0, 2);
    for (int i = 0; i < hosts; ++i) {
        policy.hosts.push_back(lower(input.ConsumeBool() ? std::string(input.PickValueInArray(sample_hosts))
                                                         : input.ConsumeRandomLengthString(32)));
    }
    const std::string origin = input.ConsumeRemainingBytesAsString();
    check_host(origin);
    check_allowed(origin, policy);
    return 0;
}
