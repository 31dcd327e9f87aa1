// The error bodies nginx writes itself: always one valid JSON-RPC error
// envelope, whatever the presented session id or request id holds, with
// the echoed session id capped.
#include "fuzz_check.hpp"
#include "mcp_session/error_body.hpp"
#include "utf8.hpp"

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

using namespace mcp_session;
using json = nlohmann::json;

namespace {

constexpr std::string_view not_found_head = "Mcp-Session-Id `";
constexpr std::string_view not_found_tail = "` is unknown or expired; re-initialize via POST without Mcp-Session-Id";

// Bytes of a capped echo: up to 128 input bytes, each at worst U+FFFD
// (3 bytes), then "...".
constexpr std::size_t max_echo_bytes = 3 * max_echoed_id_length + 3;

// The request id as the body inspection would hand it over, or anything.
std::string request_id_text(FuzzedDataProvider& input)
{
    switch (input.ConsumeIntegralInRange(0, 4)) {
    case 0:
        return "null";
    case 1:
        return json(input.ConsumeRandomLengthString(64)).dump(-1, ' ', false, json::error_handler_t::replace);
    case 2:
        return std::to_string(input.ConsumeIntegral<std::int64_t>());
    case 3:
        return std::string(input.ConsumeIntegralInRange<std::size_t>(0, 1000), '[');  // parsed without recursion
    default:
        return input.ConsumeRandomLengthString(64);
    }
}

// Checks the envelope and returns the parsed body; `echoed` is how many
// untrusted bytes the message may carry.
json check_envelope(const std::string& body, std::string_view request_id, int code, std::size_t echoed)
{
    json doc = json::parse(body, nullptr, false);
    FUZZ_CHECK(!doc.is_discarded());
    FUZZ_CHECK(doc.is_object() && doc.size() == 3);
    FUZZ_CHECK(doc.contains("jsonrpc") && doc["jsonrpc"] == "2.0");
    FUZZ_CHECK(doc.contains("id") && doc.contains("error"));
    const json given = json::parse(request_id, nullptr, false);
    if (!given.is_discarded() && (given.is_string() || given.is_number_integer())) {
        FUZZ_CHECK(doc["id"] == given);
    } else {
        FUZZ_CHECK(doc["id"].is_null());
    }
    const json& error = doc["error"];
    FUZZ_CHECK(error.is_object() && error.contains("code") && error.contains("message"));
    FUZZ_CHECK(error["code"] == code && error["message"].is_string());
    // Echoing an id never costs more than the id's own text.
    FUZZ_CHECK(body.size() <= 512 + 6 * echoed + request_id.size());
    return doc;
}

void check_not_found(std::string_view presented, std::string_view request_id)
{
    const std::string body = session_not_found_body(presented, request_id);
    const json doc = check_envelope(body, request_id, session_not_found_code, max_echoed_id_length);
    FUZZ_CHECK(doc["error"].contains("data"));
    const std::string message = doc["error"]["message"].get<std::string>();
    FUZZ_CHECK(doc["error"]["data"] ==
               json({{"error", "session_expired"}, {"status", 404}, {"retry", "re-initialize"}}));

    FUZZ_CHECK(message.size() >= not_found_head.size() + not_found_tail.size());
    FUZZ_CHECK(message.compare(0, not_found_head.size(), not_found_head) == 0);
    FUZZ_CHECK(message.compare(message.size() - not_found_tail.size(), not_found_tail.size(), not_found_tail) == 0);
    const std::string echoed =
        message.substr(not_found_head.size(), message.size() - not_found_head.size() - not_found_tail.size());
    FUZZ_CHECK(echoed.size() <= max_echo_bytes);
    const bool cut = presented.size() > max_echoed_id_length;
    if (cut) {
        FUZZ_CHECK(echoed.size() >= 3 && echoed.compare(echoed.size() - 3, 3, "...") == 0);
    }
    const std::string_view kept = presented.substr(0, max_echoed_id_length);
    if (is_valid_utf8(kept)) {
        FUZZ_CHECK(echoed == std::string(kept) + (cut ? "..." : ""));
    }
}

void check_transport_error(std::string_view message, std::string_view request_id)
{
    const json doc = check_envelope(transport_error_body(message, request_id), request_id, transport_error_code,
                                    message.size());
    FUZZ_CHECK(!doc["error"].contains("data"));
    if (is_valid_utf8(message)) {
        FUZZ_CHECK(doc["error"]["message"] == message);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider input(bytes, size);
    const std::string request_id = request_id_text(input);
    const std::string text = input.ConsumeRemainingBytesAsString();
    check_not_found(text, request_id);
    check_not_found(text, "null");
    check_transport_error(text, request_id);
    return 0;
}
