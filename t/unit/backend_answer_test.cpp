#include "mcp_session/backend_answer.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(backend_answer)

BOOST_AUTO_TEST_CASE(sdk_session_errors_are_recognised)
{
    // The TypeScript SDK's and python-sdk's answers to an unknown session.
    BOOST_TEST(is_jsonrpc_error_body(R"({"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null})"));
    BOOST_TEST(is_jsonrpc_error_body(R"({"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"x"}})"));
    BOOST_TEST(is_jsonrpc_error_body(" {\"jsonrpc\":\"2.0\",\"error\":{\"code\":0}}\n"));
}

BOOST_AUTO_TEST_CASE(other_not_found_pages_are_not)
{
    BOOST_TEST(!is_jsonrpc_error_body("<h1>Cannot POST /mcp/notfound</h1>"));
    BOOST_TEST(!is_jsonrpc_error_body(R"({"detail":"Not Found"})"));
    BOOST_TEST(!is_jsonrpc_error_body(R"({"jsonrpc":"2.0","result":{}})"));
    BOOST_TEST(!is_jsonrpc_error_body(R"({"jsonrpc":"1.0","error":{"code":-32001}})"));
    BOOST_TEST(!is_jsonrpc_error_body(R"({"jsonrpc":"2.0","error":"Session not found"})"));
    BOOST_TEST(!is_jsonrpc_error_body(R"({"jsonrpc":"2.0","error":{"code":"-32001"}})"));
    BOOST_TEST(!is_jsonrpc_error_body(R"({"jsonrpc":"2.0","error":{"code":1.5}})"));
    BOOST_TEST(!is_jsonrpc_error_body(R"([{"jsonrpc":"2.0","error":{"code":-32001}}])"));
    BOOST_TEST(!is_jsonrpc_error_body(""));
    BOOST_TEST(!is_jsonrpc_error_body(R"({"jsonrpc":"2.0","error":{"code":-32001})"));  // cut short
}

BOOST_AUTO_TEST_CASE(bodies_beyond_the_limit_are_not_inspected)
{
    const std::string envelope = R"({"jsonrpc":"2.0","error":{"code":-32001,"message":")";
    std::string padded = envelope + std::string(answer_body_limit, 'x') + "\"}}";
    BOOST_TEST(!is_jsonrpc_error_body(padded));
    const std::string fits = envelope + std::string(answer_body_limit - envelope.size() - 3, 'x') + "\"}}";
    BOOST_TEST(fits.size() == answer_body_limit);
    BOOST_TEST(is_jsonrpc_error_body(fits));
}

BOOST_AUTO_TEST_CASE(deep_nesting_within_the_limit_is_harmless)
{
    const std::string deep = R"({"jsonrpc":"2.0","error":{"code":1,"data":)" + std::string(2000, '[') +
                             std::string(2000, ']') + "}}";
    BOOST_TEST(is_jsonrpc_error_body(deep));
}

namespace {

const lost_session_rules defaults{};

session_loss_verdict on_400(std::string_view body, const lost_session_rules& rules = defaults)
{
    return classify_lost_session(400, body, rules);
}

std::string envelope(std::string_view message, int code = -32000)
{
    return R"({"jsonrpc":"2.0","error":{"code":)" + std::to_string(code) + R"(,"message":")" + std::string(message) +
           R"("},"id":null})";
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_404_envelope_is_always_a_lost_session)
{
    BOOST_TEST((classify_lost_session(404, envelope("anything at all", 7), defaults) == session_loss_verdict::lost));
    lost_session_rules none;
    none.default_rule = false;
    BOOST_TEST((classify_lost_session(404, envelope("Session not found", -32001), none) == session_loss_verdict::lost));
    BOOST_TEST((classify_lost_session(404, "<h1>Not Found</h1>", defaults) == session_loss_verdict::kept));
    BOOST_TEST((classify_lost_session(404, R"({"detail":"Not Found"})", defaults) == session_loss_verdict::kept));
}

BOOST_AUTO_TEST_CASE(sdk_400s_for_an_unknown_session_are_lost)
{
    // server-everything after a restart, byte for byte.
    BOOST_TEST((on_400(R"({"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null})") ==
                session_loss_verdict::lost));
    for (const char* message : {"Session not found", "Not Found: Invalid or expired session ID",
                                "Bad Request: Missing session ID", "Invalid session ID", "unknown session",
                                "No such session: abc", "session does not exist", "Session terminated",
                                "SESSION EXPIRED", "Bad Request: Server not initialized"}) {
        BOOST_TEST_INFO(message);
        BOOST_TEST((on_400(envelope(message)) == session_loss_verdict::lost));
    }
    BOOST_TEST((on_400(envelope("Session not found", -32600)) == session_loss_verdict::lost));
}

BOOST_AUTO_TEST_CASE(other_400s_keep_the_session)
{
    for (const char* message : {"Invalid params", "Bad Request: Unsupported protocol version",
                                "Bad Request: Mcp-Session-Id header must be a single value, got several",
                                "Parse error", "Bad Request: Server already initialized", "session", "not found"}) {
        BOOST_TEST_INFO(message);
        BOOST_TEST((on_400(envelope(message)) == session_loss_verdict::kept));
    }
    // The backend judged the message: a parameter named "session" is not a lost session.
    BOOST_TEST((on_400(envelope("Invalid params: session_name is required", -32602)) == session_loss_verdict::kept));
    BOOST_TEST((on_400(envelope("Method not found: session/unknown", -32601)) == session_loss_verdict::kept));
    BOOST_TEST((on_400(envelope("Parse error: invalid session", -32700)) == session_loss_verdict::kept));
    // Not an envelope, or no message text.
    BOOST_TEST((on_400("Bad Request: No valid session ID provided") == session_loss_verdict::kept));
    BOOST_TEST((on_400(R"({"error":{"code":-32000,"message":"Session not found"}})") == session_loss_verdict::kept));
    BOOST_TEST((on_400(R"({"jsonrpc":"2.0","error":{"code":-32000},"id":null})") == session_loss_verdict::kept));
    BOOST_TEST((on_400(R"({"jsonrpc":"2.0","error":{"code":-32000,"message":7},"id":null})") == session_loss_verdict::kept));
    // Other statuses never are.
    BOOST_TEST((classify_lost_session(401, envelope("Session not found"), defaults) == session_loss_verdict::kept));
    BOOST_TEST((classify_lost_session(500, envelope("Session not found"), defaults) == session_loss_verdict::kept));
    BOOST_TEST((classify_lost_session(200, envelope("Session not found"), defaults) == session_loss_verdict::kept));
}

BOOST_AUTO_TEST_CASE(configured_phrases_add_to_or_replace_the_default)
{
    lost_session_rules extra;
    extra.phrases[0] = "Context Gone";
    extra.phrase_count = 1;
    BOOST_TEST((on_400(envelope("the context gone away"), extra) == session_loss_verdict::lost));
    BOOST_TEST((on_400(envelope("No valid session ID provided"), extra) == session_loss_verdict::lost));
    BOOST_TEST((on_400(envelope("Invalid params"), extra) == session_loss_verdict::kept));
    // An explicit phrase is the operator's word, whatever the code.
    BOOST_TEST((on_400(envelope("context gone", -32602), extra) == session_loss_verdict::lost));

    lost_session_rules only = extra;
    only.default_rule = false;
    BOOST_TEST((on_400(envelope("No valid session ID provided"), only) == session_loss_verdict::kept));
    BOOST_TEST((on_400(envelope("CONTEXT GONE"), only) == session_loss_verdict::lost));

    lost_session_rules off;
    off.default_rule = false;
    BOOST_TEST((on_400(envelope("No valid session ID provided"), off) == session_loss_verdict::kept));
}

BOOST_AUTO_TEST_CASE(bodies_beyond_the_limit_are_kept)
{
    const std::string big = envelope("No valid session ID provided " + std::string(answer_body_limit, 'x'));
    BOOST_TEST((on_400(big) == session_loss_verdict::kept));
    BOOST_TEST((classify_lost_session(404, big, defaults) == session_loss_verdict::kept));
}

BOOST_AUTO_TEST_SUITE_END()
