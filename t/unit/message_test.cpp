#include "mcp_session/message.hpp"
#include "mcp_session/error_body.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(message)

BOOST_AUTO_TEST_CASE(initialize_is_recognised_with_its_id)
{
    const message_facts f = inspect_message_body(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
    BOOST_TEST(f.json);
    BOOST_TEST(f.initialize);
    BOOST_TEST(f.id == "1");
}

BOOST_AUTO_TEST_CASE(other_requests_keep_their_string_ids)
{
    const message_facts f = inspect_message_body(R"({"jsonrpc":"2.0","id":"a\"b","method":"tools/list"})");
    BOOST_TEST(!f.initialize);
    BOOST_TEST(f.id == R"("a\"b")");
}

BOOST_AUTO_TEST_CASE(batches_are_searched_for_initialize)
{
    const message_facts f = inspect_message_body(
        R"([{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"initialize"}])");
    BOOST_TEST(f.initialize);
    BOOST_TEST(f.id == "null");  // the first message is a notification
}

BOOST_AUTO_TEST_CASE(a_batch_names_no_single_id)
{
    const message_facts f =
        inspect_message_body(R"([{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":8,"method":"x"}])");
    BOOST_TEST(f.json);
    BOOST_TEST(f.id == "null");
}

BOOST_AUTO_TEST_CASE(meta_protocol_version_is_read)
{
    const message_facts f = inspect_message_body(
        R"({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}})");
    BOOST_TEST(f.meta_version.value() == "2026-07-28");
}

BOOST_AUTO_TEST_CASE(malformed_bodies_are_not_json)
{
    for (const char* body : {"", "{", "not json", "42", "\"text\"", "{\"a\":1}garbage"}) {
        const message_facts f = inspect_message_body(body);
        BOOST_TEST(!f.json, body);
        BOOST_TEST(!f.initialize);
        BOOST_TEST(f.id == "null");
    }
}

BOOST_AUTO_TEST_CASE(deep_nesting_is_not_inspected)
{
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    BOOST_TEST(!inspect_message_body(deep).json);
    const std::string braces_in_strings = R"({"method":"initialize","x":")" + std::string(1000, '[') + R"("})";
    BOOST_TEST(inspect_message_body(braces_in_strings).initialize);
}

bool accepted(std::string_view body) { return prepare_published_message(body).refusal == publish_refusal::none; }

BOOST_AUTO_TEST_CASE(published_messages_are_compacted)
{
    BOOST_TEST(prepare_published_message("{ \"jsonrpc\" : \"2.0\",\n \"method\": \"m\", \"params\": [1, 2] }").payload ==
               R"({"jsonrpc":"2.0","method":"m","params":[1,2]})");
    for (const char* body : {"", "{\"truncated\":", "[1,2]", "42", "\"text\"", "{\"a\":1}garbage"}) {
        BOOST_TEST((prepare_published_message(body).refusal == publish_refusal::not_json), body);
    }
}

BOOST_AUTO_TEST_CASE(only_requests_and_notifications_are_published)
{
    BOOST_TEST(accepted(R"({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}})"));
    BOOST_TEST(accepted(R"({"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}})"));
    for (const char* body : {R"({"n":1})", R"({"foo":1})", R"({"method":"m"})", R"({"jsonrpc":"1.0","method":"m"})",
                             R"({"jsonrpc":2.0,"method":"m"})", R"({"jsonrpc":"2.0","method":7})", R"({"jsonrpc":"2.0"})"}) {
        BOOST_TEST((prepare_published_message(body).refusal == publish_refusal::not_jsonrpc), body);
    }
    for (const char* body : {R"({"jsonrpc":"2.0","id":1,"result":{}})", R"({"jsonrpc":"2.0","id":1,"error":{"code":1}})"}) {
        BOOST_TEST((prepare_published_message(body).refusal == publish_refusal::response), body);
    }
    BOOST_TEST(publish_refusal_message(publish_refusal::response).find("stream of its request") != std::string_view::npos);
    BOOST_TEST(publish_refusal_message(publish_refusal::none).empty());
}

BOOST_AUTO_TEST_CASE(published_messages_are_bounded_in_depth)
{
    const auto nested = [](std::size_t depth) {
        return "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":" + std::string(depth - 1, '[') +
               std::string(depth - 1, ']') + "}";
    };
    BOOST_TEST(accepted(nested(max_published_depth)));
    BOOST_TEST(!accepted(nested(max_published_depth + 1)));
    BOOST_TEST(!accepted(nested(1000000)));  // refused before anything recursive runs
    const std::string brackets_in_strings = R"({"jsonrpc":"2.0","method":"m","x":")" + std::string(1000, '[') + R"("})";
    BOOST_TEST(accepted(brackets_in_strings));
}

// Found by t/fuzz/message_fuzz.cpp: nlohmann stops reading at a NUL byte,
// so a valid message followed by NUL and anything was taken for JSON (in
// issue mode an initialize made a session the backend would refuse).
BOOST_AUTO_TEST_CASE(a_nul_byte_makes_a_body_not_json)
{
    using namespace std::string_literals;
    const std::string initialize = R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})";
    const message_facts f = inspect_message_body(initialize + "\0"s + "trailing garbage");
    BOOST_TEST(!f.json);
    BOOST_TEST(!f.initialize);
    BOOST_TEST(f.id == "null");
    BOOST_TEST(!inspect_message_body(initialize + "\0"s).json);
    BOOST_TEST(!inspect_message_body("[]\0"s + std::string(100, '[')).json);
    BOOST_TEST(!accepted(R"({"jsonrpc":"2.0","method":"m"})"s + "\0"s + "more"));
    BOOST_TEST(accepted(R"({"jsonrpc":"2.0","method":"m","a":"\u0000"})"));  // an escaped NUL is fine
    BOOST_TEST(inspect_message_body(R"({"id":"\u0000","method":"initialize"})").initialize);
}

BOOST_AUTO_TEST_CASE(the_last_duplicate_key_wins_as_in_a_dom)
{
    BOOST_TEST(!inspect_message_body(R"({"method":"initialize","method":"tools/list"})").initialize);
    BOOST_TEST(inspect_message_body(R"({"method":"x","method":"initialize"})").initialize);
    BOOST_TEST(inspect_message_body(R"({"id":"a","id":1.5,"method":"x"})").id == "null");
    BOOST_TEST(inspect_message_body(R"({"id":1.5,"id":7})").id == "7");
    const char* versioned = R"({"params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}},"params":{}})";
    BOOST_TEST(!inspect_message_body(versioned).meta_version);
    const char* meta_twice = R"({"params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"a"},"_meta":5}})";
    BOOST_TEST(!inspect_message_body(meta_twice).meta_version);
}

BOOST_AUTO_TEST_CASE(only_top_level_messages_count)
{
    // An initialize nested in params, or a batch inside a batch, is no message.
    BOOST_TEST(!inspect_message_body(R"({"method":"x","params":{"method":"initialize"}})").initialize);
    BOOST_TEST(!inspect_message_body(R"([[{"method":"initialize"}]])").initialize);
    BOOST_TEST(inspect_message_body(R"([[{"method":"initialize"}]])").json);
    BOOST_TEST(inspect_message_body(R"([1,{"id":2,"method":"initialize"}])").id == "null");  // the first is not a message
    BOOST_TEST(inspect_message_body(R"({"id":18446744073709551615})").id == "18446744073709551615");
    BOOST_TEST(inspect_message_body(R"({"id":-3})").id == "-3");
}

BOOST_AUTO_TEST_CASE(invalid_text_is_not_json)
{
    using namespace std::string_literals;
    for (const std::string& body : {R"({"method":"initialize","x":"\ud800"})"s, "{\"method\":\"initialize\",\"x\":\"\xff\"}"s,
                                   R"({"method":"initialize"} {})"s, R"({"method":"initialize",})"s}) {
        const message_facts f = inspect_message_body(body);
        BOOST_TEST(!f.json, body);
        BOOST_TEST(!f.initialize);
        BOOST_TEST(f.decided);
    }
}

BOOST_AUTO_TEST_CASE(nesting_exactly_at_the_limit_is_inspected)
{
    const auto nested = [](std::size_t depth) {
        return R"({"method":"initialize","x":)" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
    };
    BOOST_TEST(inspect_message_body(nested(max_inspected_depth)).initialize);
    BOOST_TEST(!inspect_message_body(nested(max_inspected_depth + 1)).json);
}

BOOST_AUTO_TEST_CASE(long_ids_and_versions_are_not_kept)
{
    const std::string long_id = std::string(max_inspected_id_length, 'i');  // quoted: two bytes over
    BOOST_TEST(inspect_message_body(R"({"id":")" + long_id + R"("})").id == "null");
    BOOST_TEST(inspect_message_body(R"({"id":")" + long_id.substr(2) + R"("})").id == '"' + long_id.substr(2) + '"');
    const std::string meta = R"({"params":{"_meta":{"io.modelcontextprotocol/protocolVersion":")";
    BOOST_TEST(!inspect_message_body(meta + std::string(max_meta_version_length + 1, '2') + R"("}}})").meta_version);
    BOOST_TEST(inspect_message_body(meta + std::string(max_meta_version_length, '2') + R"("}}})").meta_version.has_value());
}

// Only a prefix of a large body is read. What the prefix settles (a syntax
// error, depth, a bare scalar) is decided; a clean prefix is not.
BOOST_AUTO_TEST_CASE(a_prefix_settles_only_what_it_can)
{
    const std::string init = R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})";
    message_facts whole = inspect_message_body(init, true);
    BOOST_TEST(whole.decided);
    BOOST_TEST(whole.initialize);

    message_facts cut = inspect_message_body(std::string_view(init).substr(0, 30), false);
    BOOST_TEST(!cut.decided);
    BOOST_TEST(cut.json);  // a clean start of an object
    BOOST_TEST(cut.id == "1");
    BOOST_TEST(!inspect_message_body(std::string_view(init).substr(0, 30), true).json);  // a whole body that ends early

    message_facts complete_prefix = inspect_message_body(init, false);  // more follows: it could be garbage
    BOOST_TEST(!complete_prefix.decided);
    BOOST_TEST(complete_prefix.initialize);

    for (const char* settled : {"{]", "42", "{\"a\":1}}", "nul"}) {
        const message_facts f = inspect_message_body(settled, false);
        BOOST_TEST((f.decided && !f.json) == (std::string(settled) != "nul"), settled);
    }
    const std::string deep(max_inspected_depth + 1, '[');
    BOOST_TEST(inspect_message_body(deep, false).decided);
}

BOOST_AUTO_TEST_CASE(a_large_body_is_read_only_up_to_the_bound)
{
    // A batch of a million empty objects: the inspection stops at
    // max_inspected_bytes and cannot tell what the rest holds.
    std::string batch = "[";
    for (int i = 0; i < 1000000; ++i) {
        batch += i == 0 ? "{}" : ",{}";
    }
    batch += "]";
    const message_facts f = inspect_message_body(batch);
    BOOST_TEST(!f.decided);
    BOOST_TEST(f.json);
    BOOST_TEST(!f.initialize);
    // An initialize beyond the bound is never seen.
    const std::string late = batch.substr(0, batch.size() - 1) + R"(,{"method":"initialize"}])";
    BOOST_TEST(!inspect_message_body(late).initialize);
    // Small bodies are always decided.
    BOOST_TEST(inspect_message_body(std::string(max_inspected_bytes - 2, ' ') + "{}").decided);
    BOOST_TEST(!inspect_message_body(std::string(max_inspected_bytes - 1, ' ') + "{}").decided);
}

BOOST_AUTO_TEST_CASE(ids_reach_error_bodies)
{
    BOOST_TEST(transport_error_body("x", "7").find(R"("id":7)") != std::string::npos);
    BOOST_TEST(transport_error_body("x", R"("abc")").find(R"("id":"abc")") != std::string::npos);
    BOOST_TEST(transport_error_body("x", "{\"not\":\"an id\"}").find(R"("id":null)") != std::string::npos);
    BOOST_TEST(session_not_found_body("s", "9").find(R"("id":9)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(binding_digests_are_keyed_and_distinct)
{
    BOOST_TEST(binding_digest("alice", 1) == binding_digest("alice", 1));
    BOOST_TEST(binding_digest("alice", 1) != binding_digest("alice", 2));
    BOOST_TEST(binding_digest("alice", 1) != binding_digest("bob", 1));
    BOOST_TEST(binding_digest("", 1) != binding_digest(std::string(1, '\0'), 1));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(message_labels)

BOOST_AUTO_TEST_CASE(method_and_target_are_read)
{
    const message_facts call = inspect_message_body(
        R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get_weather","arguments":{"name":"x"}}})");
    BOOST_TEST(call.method == "tools/call");
    BOOST_TEST(call.target == "get_weather");  // the arguments' own "name" is not the tool's
    const message_facts read =
        inspect_message_body(R"({"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"file:///a.txt"}})");
    BOOST_TEST(read.target == "file:///a.txt");
    const message_facts prompt =
        inspect_message_body(R"({"params":{"name":"review"},"method":"prompts/get","jsonrpc":"2.0","id":6})");
    BOOST_TEST(prompt.target == "review");  // key order does not matter
    const message_facts list = inspect_message_body(R"({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"name":"x"}})");
    BOOST_TEST(list.method == "tools/list");
    BOOST_TEST(list.target.empty());  // only three methods name a target
}

BOOST_AUTO_TEST_CASE(batches_and_duplicates)
{
    BOOST_TEST(inspect_message_body(R"([{"method":"tools/call","params":{"name":"a"}}])").method == "batch");
    BOOST_TEST(inspect_message_body(R"([{"method":"tools/call","params":{"name":"a"}}])").target.empty());
    const message_facts dup =
        inspect_message_body(R"({"method":"tools/call","params":{"name":"a","name":"b"},"method":"tools/call"})");
    BOOST_TEST(dup.target == "b");  // the last duplicate wins, as everywhere
}

BOOST_AUTO_TEST_CASE(labels_are_safe_for_logs_and_headers)
{
    const message_facts evil = inspect_message_body(
        R"({"method":"tools/call","params":{"name":"a\r\nX-Injected: 1\u0000"}})");
    BOOST_TEST(evil.target == "a??X-Injected: 1?");
    const std::string long_name(max_target_length + 1, 'n');
    BOOST_TEST(inspect_message_body(R"({"method":"tools/call","params":{"name":")" + long_name + "\"}}").target.empty());
    BOOST_TEST(log_label("ok", 2) == "ok");
    BOOST_TEST(log_label("abc", 2).empty());
    BOOST_TEST(log_label("\x7f", 4) == "?");
}

BOOST_AUTO_TEST_SUITE_END()
