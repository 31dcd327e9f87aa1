#include "mcp_session/answer_watch.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace mcp_session;

namespace {

std::uint32_t of(const error_counts& c, error_class k) { return c[static_cast<std::size_t>(k)]; }

std::uint32_t total(const error_counts& c)
{
    std::uint32_t n = 0;
    for (const auto v : c) {
        n += v;
    }
    return n;
}

std::string error_body(int code) { return R"({"jsonrpc":"2.0","id":1,"error":{"code":)" + std::to_string(code) + R"(,"message":"m"}})"; }

// Feeds `body` in pieces of `step` bytes.
error_counts watched(answer_watch::form f, const std::string& body, std::size_t step, bool tools_call = false)
{
    answer_watch w(f, tools_call);
    for (std::size_t i = 0; i < body.size() && !w.done(); i += step) {
        const std::string_view piece = std::string_view(body).substr(i, step);
        w.feed(piece, i + step >= body.size());
    }
    if (body.empty()) {
        w.feed({}, true);
    }
    return w.counts();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(answer_watch_suite)

BOOST_AUTO_TEST_CASE(codes_fall_in_their_json_rpc_classes)
{
    BOOST_TEST(error_class_label(error_class_of(-32700)) == "parse_error");
    BOOST_TEST(error_class_label(error_class_of(-32600)) == "invalid_request");
    BOOST_TEST(error_class_label(error_class_of(-32601)) == "method_not_found");
    BOOST_TEST(error_class_label(error_class_of(-32602)) == "invalid_params");
    BOOST_TEST(error_class_label(error_class_of(-32603)) == "internal_error");
    BOOST_TEST(error_class_label(error_class_of(-32000)) == "server_error");
    BOOST_TEST(error_class_label(error_class_of(-32099)) == "server_error");
    BOOST_TEST(error_class_label(error_class_of(-32001)) == "server_error");
    BOOST_TEST(error_class_label(error_class_of(-32100)) == "other");
    BOOST_TEST(error_class_label(error_class_of(-31999)) == "other");
    BOOST_TEST(error_class_label(error_class_of(0)) == "other");
    BOOST_TEST(error_class_label(error_class_of(42)) == "other");
}

BOOST_AUTO_TEST_CASE(an_error_response_counts_once_by_its_code)
{
    BOOST_TEST(of(classify_answer(error_body(-32601), false), error_class::method_not_found) == 1u);
    BOOST_TEST(total(classify_answer(error_body(-32601), false)) == 1u);
    // Members in any order, the error's data nested.
    const auto c = classify_answer(R"({"error":{"data":{"code":1,"error":{"code":2}},"code":-32602},"id":3,"jsonrpc":"2.0"})", false);
    BOOST_TEST(of(c, error_class::invalid_params) == 1u);
    BOOST_TEST(total(c) == 1u);
    BOOST_TEST(of(classify_answer(R"({"jsonrpc":"2.0","id":1,"error":{"code":1.5}})", false), error_class::other) == 1u);
    BOOST_TEST(of(classify_answer(R"({"jsonrpc":"2.0","id":1,"error":{"message":"no code"}})", false), error_class::other) == 1u);
}

BOOST_AUTO_TEST_CASE(what_is_not_an_error_response_counts_nothing)
{
    BOOST_TEST(total(classify_answer(R"({"jsonrpc":"2.0","id":1,"result":{"error":{"code":-32600}}})", false)) == 0u);
    BOOST_TEST(total(classify_answer(R"({"jsonrpc":"2.0","id":1,"result":{}})", true)) == 0u);
    BOOST_TEST(total(classify_answer(R"({"jsonrpc":"2.0","id":1,"error":"a string"})", false)) == 0u);
    BOOST_TEST(total(classify_answer("<html>error</html>", false)) == 0u);
    BOOST_TEST(total(classify_answer("\"error\"", false)) == 0u);
    BOOST_TEST(total(classify_answer("", false)) == 0u);
    BOOST_TEST(total(classify_answer(R"([[{"error":{"code":-32600}}]])", false)) == 0u);  // too deep for a message
}

BOOST_AUTO_TEST_CASE(a_request_or_notification_counts_nothing)
{
    BOOST_TEST(total(classify_answer(R"({"jsonrpc":"2.0","method":"notifications/message","error":{"code":-32601}})", false)) == 0u);
    BOOST_TEST(total(classify_answer(R"({"error":{"code":-32601},"id":1,"method":"x"})", false)) == 0u);
    BOOST_TEST(total(classify_answer(R"({"jsonrpc":"2.0","id":1,"method":"m","result":{"isError":true}})", true)) == 0u);
    // In a batch, each message on its own.
    const auto c = classify_answer(R"([{"method":"x","error":{"code":-32601}},{"id":2,"error":{"code":-32601}}])", false);
    BOOST_TEST(of(c, error_class::method_not_found) == 1u);
    BOOST_TEST(total(c) == 1u);
}

// The test before the parse finds either name anywhere, also right after
// another string's closing quote or at the text's very end.
BOOST_AUTO_TEST_CASE(the_names_are_found_wherever_they_stand)
{
    BOOST_TEST(total(classify_answer(R"({"a":"\"","b":"x","id":1,"error":{"code":-32600}})", false)) == 1u);
    BOOST_TEST(total(classify_answer(R"({"id":1,"result":{"content":"\"isError","isError":true}})", true)) == 1u);
    BOOST_TEST(total(classify_answer(R"({"id":1,"error)", false)) == 0u);  // cut inside the name: no member
    BOOST_TEST(total(classify_answer(R"({"id":1,"error":{)", false)) == 1u);  // cut inside its object: other
}

BOOST_AUTO_TEST_CASE(a_batch_counts_each_error)
{
    const auto c = classify_answer(
        R"([{"jsonrpc":"2.0","id":1,"error":{"code":-32601}},{"jsonrpc":"2.0","id":2,"result":{}},)"
        R"({"jsonrpc":"2.0","id":3,"error":{"code":-32601}},{"jsonrpc":"2.0","id":4,"error":{"code":-32700}},7])",
        false);
    BOOST_TEST(of(c, error_class::method_not_found) == 2u);
    BOOST_TEST(of(c, error_class::parse_error) == 1u);
    BOOST_TEST(total(c) == 3u);
}

BOOST_AUTO_TEST_CASE(tool_errors_count_only_for_tools_call)
{
    const std::string failed = R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"boom","isError":false}],"isError":true}})";
    BOOST_TEST(of(classify_answer(failed, true), error_class::tool_error) == 1u);
    BOOST_TEST(total(classify_answer(failed, false)) == 0u);
    BOOST_TEST(total(classify_answer(R"({"jsonrpc":"2.0","id":1,"result":{"isError":false}})", true)) == 0u);
    BOOST_TEST(total(classify_answer(R"({"jsonrpc":"2.0","id":1,"result":{"meta":{"isError":true}}})", true)) == 0u);
}

BOOST_AUTO_TEST_CASE(only_the_prefix_is_read_and_a_cut_message_still_counts)
{
    // The code comes early; the rest runs past the prefix.
    std::string long_error = R"({"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":")" +
                             std::string(2 * answer_watch_prefix, 'x') + R"("}})";
    BOOST_TEST(of(classify_answer(long_error, false), error_class::internal_error) == 1u);
    // isError beyond the prefix is not seen.
    std::string long_result = R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":")" +
                              std::string(2 * answer_watch_prefix, 'x') + R"("}],"isError":true}})";
    BOOST_TEST(total(classify_answer(long_result, true)) == 0u);
    BOOST_TEST(of(classify_answer(R"({"jsonrpc":"2.0","id":1,"error":{"code":-32700,"mess)", false), error_class::parse_error) == 1u);
}

BOOST_AUTO_TEST_CASE(a_json_body_split_anywhere_counts_the_same)
{
    const std::string body = error_body(-32050);
    for (std::size_t step = 1; step <= body.size(); ++step) {
        const auto c = watched(answer_watch::form::json, body, step);
        BOOST_TEST(of(c, error_class::server_error) == 1u, "step " << step);
        BOOST_TEST(total(c) == 1u);
    }
}

BOOST_AUTO_TEST_CASE(a_json_body_is_done_after_its_prefix)
{
    answer_watch w(answer_watch::form::json, false);
    const std::string head = R"({"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":")" + std::string(answer_watch_prefix, 'x');
    w.feed(std::string_view(head).substr(0, 100), false);
    BOOST_TEST(!w.done());
    w.feed(std::string_view(head).substr(100), false);
    BOOST_TEST(w.done());
    BOOST_TEST(of(w.counts(), error_class::invalid_request) == 1u);
}

BOOST_AUTO_TEST_CASE(sse_events_are_read_from_their_data_lines)
{
    const std::string stream =
        ": a comment\r\n"
        "event: message\r\n"
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"error\":{}}}\r\n"
        "\r\n"
        "id: 7\n"
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\n"
        "data:\"error\":{\"code\":-32601,\"message\":\"no\"}}\n"
        "\n"
        "retry: 1000\r"
        "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"isError\":true}}\r"
        "\r"
        "data: {\"error\":{\"code\":-32700}}";  // unterminated at the end: still counted
    for (std::size_t step = 1; step <= stream.size(); ++step) {
        const auto c = watched(answer_watch::form::event_stream, stream, step, true);
        BOOST_TEST(of(c, error_class::method_not_found) == 1u, "step " << step);
        BOOST_TEST(of(c, error_class::tool_error) == 1u, "step " << step);
        BOOST_TEST(of(c, error_class::parse_error) == 1u, "step " << step);
        BOOST_TEST(total(c) == 3u, "step " << step);
    }
}

BOOST_AUTO_TEST_CASE(sse_fields_that_are_not_data_are_ignored)
{
    const std::string stream =
        "database: {\"error\":{\"code\":-32600}}\n\n"
        "dat: {\"error\":{\"code\":-32600}}\n\n"
        ":data: {\"error\":{\"code\":-32600}}\n\n"
        "data:  {\"error\":{\"code\":-32601}}\n\n";  // the second space is the value's
    const auto c = watched(answer_watch::form::event_stream, stream, stream.size());
    BOOST_TEST(of(c, error_class::method_not_found) == 1u);
    BOOST_TEST(total(c) == 1u);
}

BOOST_AUTO_TEST_CASE(a_huge_sse_event_keeps_only_its_prefix_and_the_stream_is_followed_up_to_its_limit)
{
    std::string stream = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602,\"message\":\"" +
                         std::string(3 * answer_watch_prefix, 'y') + "\"}}\n\n";
    auto c = watched(answer_watch::form::event_stream, stream, 1000);
    BOOST_TEST(of(c, error_class::invalid_params) == 1u);

    answer_watch w(answer_watch::form::event_stream, false);
    const std::string filler = ": " + std::string(1000, 'z') + "\n";
    while (!w.done()) {
        w.feed(filler, false);
    }
    w.feed("data: {\"error\":{\"code\":-32600}}\n\n", true);  // past the limit: not looked at
    BOOST_TEST(total(w.counts()) == 0u);
}

BOOST_AUTO_TEST_CASE(statuses_outside_the_list_are_other)
{
    BOOST_TEST(tracked_statuses[status_index(200)] == 200u);
    BOOST_TEST(tracked_statuses[status_index(504)] == 504u);
    BOOST_TEST(status_index(201) == tracked_statuses.size());
    BOOST_TEST(status_index(0) == tracked_statuses.size());
    BOOST_TEST(status_index(599) == tracked_statuses.size());
}

BOOST_AUTO_TEST_SUITE_END()
