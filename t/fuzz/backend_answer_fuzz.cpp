// Which backend answers end a session: the verdict never throws, never
// ends a session for a status other than 400/404 or a body past the limit,
// and agrees with an independent reading of the envelope (nlohmann), so a
// 400 that is not a JSON-RPC error envelope with a string message is
// always kept.
#include "fuzz_check.hpp"
#include "mcp_session/backend_answer.hpp"

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

using namespace mcp_session;
using json = nlohmann::json;

namespace {

bool reference_envelope(const std::string& body, json* error)
{
    if (body.size() > answer_body_limit) {
        return false;
    }
    json doc = json::parse(body, nullptr, false);
    if (!doc.is_object() || !doc.contains("jsonrpc") || doc["jsonrpc"] != "2.0" || !doc.contains("error") ||
        !doc["error"].is_object() || !doc["error"].contains("code") || !doc["error"]["code"].is_number_integer()) {
        return false;
    }
    *error = doc["error"];
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    FuzzedDataProvider input(data, size);
    const int status = input.ConsumeBool() ? 400 : input.ConsumeBool() ? 404 : input.ConsumeIntegralInRange(100, 599);
    lost_session_rules rules;
    rules.default_rule = input.ConsumeBool();
    rules.phrase_count = input.ConsumeIntegralInRange<std::size_t>(0, max_lost_session_phrases);
    std::string phrases[max_lost_session_phrases];
    for (std::size_t i = 0; i < rules.phrase_count; ++i) {
        phrases[i] = input.ConsumeRandomLengthString(max_lost_session_phrase_length);
        rules.phrases[i] = phrases[i];
    }
    const std::string body = input.ConsumeRemainingBytesAsString();

    const session_loss_verdict verdict = classify_lost_session(status, body, rules);
    json error;
    const bool envelope = reference_envelope(body, &error);
    FUZZ_CHECK(is_jsonrpc_error_body(body) == envelope);
    if (status != 400 && status != 404) {
        FUZZ_CHECK(verdict == session_loss_verdict::kept);
    } else if (status == 404) {
        FUZZ_CHECK((verdict == session_loss_verdict::lost) == envelope);
    } else if (!envelope || !error.contains("message") || !error["message"].is_string()) {
        FUZZ_CHECK(verdict == session_loss_verdict::kept);
    } else if (!rules.default_rule && rules.phrase_count == 0) {
        FUZZ_CHECK(verdict == session_loss_verdict::kept);  // off
    }
    return 0;
}
