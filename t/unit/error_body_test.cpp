#include "mcp_session/error_body.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <string>

using namespace mcp_session;
using nlohmann::json;

BOOST_AUTO_TEST_SUITE(error_body)

BOOST_AUTO_TEST_CASE(not_found_body_is_the_documented_envelope)
{
    BOOST_TEST(session_not_found_body("abc") ==
               R"({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Mcp-Session-Id `abc` is unknown or )"
               R"(expired; re-initialize via POST without Mcp-Session-Id","data":{"error":"session_expired",)"
               R"("status":404,"retry":"re-initialize"}}})");
}

BOOST_AUTO_TEST_CASE(echoed_id_is_escaped)
{
    const json body = json::parse(session_not_found_body("a\"b\\c\x01<script>"));
    const std::string message = body["error"]["message"];
    BOOST_TEST(message.find("`a\"b\\c\x01<script>`") != std::string::npos);
    BOOST_TEST(session_not_found_body("\x01").find("\\u0001") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(echoed_id_is_capped)
{
    const std::string long_id(5000, 'x');
    const json body = json::parse(session_not_found_body(long_id));
    const std::string message = body["error"]["message"];
    BOOST_TEST(message.find(std::string(max_echoed_id_length, 'x') + "...`") != std::string::npos);
    BOOST_TEST(message.find(std::string(max_echoed_id_length + 1, 'x')) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_replaced_not_thrown)
{
    std::string body;
    BOOST_CHECK_NO_THROW(body = session_not_found_body("\xff\xfe"));
    BOOST_TEST(json::parse(body)["error"]["code"] == session_not_found_code);
}

BOOST_AUTO_TEST_CASE(the_request_id_is_echoed_when_a_string_or_an_integer)
{
    BOOST_TEST(transport_error_body("m", R"("a\"b")") ==
               R"({"jsonrpc":"2.0","id":"a\"b","error":{"code":-32000,"message":"m"}})");
    BOOST_TEST(json::parse(session_not_found_body("s", "42"))["id"] == 42);
    BOOST_TEST(json::parse(session_not_found_body("s", "-7"))["id"] == -7);
    for (const char* not_an_id : {"1.5", "{}", "[1]", "true", "\"unterminated", "", "4 2", "null"}) {
        const json body = json::parse(session_not_found_body("s", not_an_id));
        BOOST_TEST(body["id"].is_null(), not_an_id);
        BOOST_TEST(body["error"]["code"] == session_not_found_code);
    }
    // Invalid UTF-8 inside a string id is no JSON text: null, not thrown.
    BOOST_TEST(json::parse(transport_error_body("m", "\"\xff\""))["id"].is_null());
}

BOOST_AUTO_TEST_CASE(transport_errors_use_code_32000_without_data)
{
    const json body = json::parse(transport_error_body("Bad Request: x"));
    BOOST_TEST(body["jsonrpc"] == "2.0");
    BOOST_TEST(body["id"].is_null());
    BOOST_TEST(body["error"]["code"] == -32000);
    BOOST_TEST(body["error"]["message"] == "Bad Request: x");
    BOOST_TEST(!body["error"].contains("data"));
}

BOOST_AUTO_TEST_SUITE_END()
