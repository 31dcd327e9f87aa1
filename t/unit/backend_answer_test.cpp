#include "mcp_session/backend_answer.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

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

BOOST_AUTO_TEST_SUITE_END()
