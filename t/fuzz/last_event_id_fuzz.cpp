// Last-Event-ID parsing (a cursor, 400 when malformed) and the publisher's
// ?event= kind names.
#include "fuzz_check.hpp"
#include "mcp_session/event.hpp"

#include <cstdint>
#include <string>
#include <string_view>

using namespace mcp_session;

namespace {

// Decides by text alone: digits only, and at most 2^64-1 once leading
// zeros are dropped.
bool acceptable_reference(std::string_view trimmed, std::string& significant)
{
    for (const char c : trimmed) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    std::size_t zeros = 0;
    while (zeros < trimmed.size() && trimmed[zeros] == '0') {
        ++zeros;
    }
    significant = std::string(trimmed.substr(zeros));
    if (significant.empty()) {
        significant = "0";
    }
    constexpr std::string_view max_text = "18446744073709551615";
    return significant.size() < max_text.size() ||
           (significant.size() == max_text.size() && significant <= max_text);
}

void check_cursor(std::string_view raw)
{
    const std::optional<std::uint64_t> cursor = parse_last_event_id(raw);
    const std::string_view trimmed = fuzz_reference::trim_ows(raw);
    if (trimmed.empty()) {
        FUZZ_CHECK(cursor && *cursor == 0);
        return;
    }
    std::string significant;
    const bool acceptable = acceptable_reference(trimmed, significant);
    FUZZ_CHECK(cursor.has_value() == acceptable);
    if (!cursor) {
        return;
    }
    FUZZ_CHECK(std::to_string(*cursor) == significant);
    // The id nginx writes on the wire reads back as itself.
    const std::string wire = std::to_string(*cursor);
    FUZZ_CHECK(parse_last_event_id(wire) == cursor);
    FUZZ_CHECK(parse_last_event_id(" \t" + wire + "\t ") == cursor);
}

void check_kind(std::string_view name)
{
    const std::optional<event_kind> kind = parse_published_kind(name);
    FUZZ_CHECK(kind.has_value() == (name == "message" || name == "progress"));
    if (kind) {
        FUZZ_CHECK(kind_name(*kind) == name);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view raw(reinterpret_cast<const char*>(data), size);
    check_cursor(raw);
    check_kind(raw);
    return 0;
}
