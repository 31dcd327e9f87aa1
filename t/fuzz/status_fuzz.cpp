// The status endpoint's two formats: JSON that parses back to the figures,
// and Prometheus text whose every sample line carries the zone label intact
// whatever the zone's name holds.
#include "fuzz_check.hpp"
#include "mcp_session/status.hpp"
#include "utf8.hpp"

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace mcp_session;
using json = nlohmann::json;

namespace {

constexpr std::size_t gauges = 6;
constexpr std::size_t counters = 24;

// One sample line: name{zone="<escaped>"} value. Returns false when the
// line does not have that shape.
bool read_sample(std::string_view line, std::string& name, std::string& zone, std::string& value)
{
    const std::size_t open = line.find("{zone=\"");
    if (open == std::string_view::npos) {
        return false;
    }
    name = std::string(line.substr(0, open));
    zone.clear();
    std::size_t i = open + 7;
    for (;; ++i) {
        if (i >= line.size()) {
            return false;
        }
        if (line[i] == '"') {
            break;
        }
        if (line[i] == '\\') {
            if (++i >= line.size()) {
                return false;
            }
            const char c = line[i];
            if (c == 'n') {
                zone += '\n';
            } else if (c == '\\' || c == '"') {
                zone += c;
            } else {
                return false;
            }
        } else {
            zone += line[i];
        }
    }
    if (line.substr(i, 3) != "\"} ") {
        return false;
    }
    value = std::string(line.substr(i + 3));
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider input(bytes, size);
    zone_status status;
    std::vector<std::uint64_t*> fields = {&status.size, &status.bytes_used, &status.bytes_free, &status.sessions,
                                          &status.sessions_with_ring, &status.open_streams};
    for (std::uint64_t* f : {&status.counters.created, &status.counters.validated, &status.counters.rejected_unknown,
                             &status.counters.expired_lazily, &status.counters.expired_swept, &status.counters.evicted,
                             &status.counters.deleted, &status.counters.events_published,
                             &status.counters.events_replayed, &status.counters.lagged_notices,
                             &status.counters.heartbeats, &status.counters.evicted_unused,
                             &status.counters.evicted_established, &status.counters.rings_allocated,
                             &status.counters.rings_freed}) {
        fields.push_back(f);
    }
    for (std::uint64_t* f : fields) {
        *f = input.ConsumeIntegral<std::uint64_t>();
    }
    status.zone = input.ConsumeRemainingBytesAsString();

    const std::string text = status_json(status);
    FUZZ_CHECK(json::accept(text));
    const json doc = json::parse(text);
    FUZZ_CHECK(doc["zone"].is_string());
    if (is_valid_utf8(status.zone)) {
        FUZZ_CHECK(doc["zone"] == status.zone);
    }
    FUZZ_CHECK(doc["size"] == status.size && doc["open_streams"] == status.open_streams);
    FUZZ_CHECK(doc["counters"].size() == counters);
    FUZZ_CHECK(doc["counters"]["heartbeats"] == status.counters.heartbeats);
    FUZZ_CHECK(doc["counters"]["created"] == status.counters.created);

    const std::string prom = status_prometheus(status);
    FUZZ_CHECK(!prom.empty() && prom.back() == '\n');
    std::size_t samples = 0;
    std::size_t start = 0;
    while (start < prom.size()) {
        const std::size_t end = prom.find('\n', start);
        const std::string_view line = std::string_view(prom).substr(start, end - start);
        start = end + 1;
        if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
            continue;
        }
        std::string name, zone, value;
        FUZZ_CHECK(read_sample(line, name, zone, value));
        FUZZ_CHECK(zone == status.zone);
        FUZZ_CHECK(name.rfind("mcp_session_", 0) == 0);
        FUZZ_CHECK(value == std::to_string(*fields[samples]));
        ++samples;
    }
    FUZZ_CHECK(samples == gauges + counters);
    return 0;
}
