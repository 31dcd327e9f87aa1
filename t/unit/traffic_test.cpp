#include "mcp_session/traffic.hpp"

#include <boost/test/unit_test.hpp>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(traffic)

BOOST_AUTO_TEST_CASE(latency_buckets_take_their_upper_bound)
{
    BOOST_TEST(latency_bucket_of(0) == 0u);
    BOOST_TEST(latency_bucket_of(5) == 0u);    // le="0.005"
    BOOST_TEST(latency_bucket_of(6) == 1u);
    BOOST_TEST(latency_bucket_of(1000) == 7u);  // le="1"
    BOOST_TEST(latency_bucket_of(10000) == 10u);
    BOOST_TEST(latency_bucket_of(10001) == latency_buckets - 1);  // +Inf
}

BOOST_AUTO_TEST_CASE(methods_outside_the_list_are_other_and_unread_bodies_none)
{
    BOOST_TEST(method_labels[method_index("tools/call")] == "tools/call");
    BOOST_TEST(method_labels[method_index("batch")] == "batch");
    BOOST_TEST(method_labels[method_index("vendor/x")] == "other");
    BOOST_TEST(method_labels[method_index("other")] == "other");
    BOOST_TEST(method_labels[method_index("none")] == "other");  // a client cannot name the unread label
    BOOST_TEST(method_labels[method_index("")] == "none");
}

BOOST_AUTO_TEST_CASE(only_printable_short_tool_names_get_a_label)
{
    BOOST_TEST(is_trackable_tool_name("get_weather"));
    BOOST_TEST(is_trackable_tool_name(std::string(max_tool_name, 'x')));
    BOOST_TEST(!is_trackable_tool_name(std::string(max_tool_name + 1, 'x')));
    BOOST_TEST(!is_trackable_tool_name(""));
    BOOST_TEST(!is_trackable_tool_name("a\nb"));
    BOOST_TEST(!is_trackable_tool_name("caf\xc3\xa9"));
}

BOOST_AUTO_TEST_CASE(the_exposition_has_cumulative_histograms_and_escaped_labels)
{
    traffic_figures f;
    auto& call = f.methods[method_index("tools/call")];
    call.requests = 3;
    call.by_status_class[1] = 2;
    call.by_status_class[4] = 1;
    call.latency[0] = 1;
    call.latency[3] = 2;
    call.latency_sum_ms = 1234;
    f.tools[0].name = "say \"hi\"";
    f.tools[0].figures.requests = 1;
    f.tools_used = 1;
    f.own_answers[static_cast<std::size_t>(own_answer::session_not_found)] = 4;
    const std::string text = traffic_prometheus("z", f);
    BOOST_TEST(text.find("mcp_session_requests_total{zone=\"z\",method=\"tools/call\"} 3\n") != std::string::npos);
    BOOST_TEST(text.find("status_class=\"5xx\"} 1\n") != std::string::npos);
    BOOST_TEST(text.find("method=\"tools/call\",le=\"0.01\"} 1\n") != std::string::npos);
    BOOST_TEST(text.find("method=\"tools/call\",le=\"0.05\"} 3\n") != std::string::npos);
    BOOST_TEST(text.find("method=\"tools/call\",le=\"+Inf\"} 3\n") != std::string::npos);
    BOOST_TEST(text.find("mcp_session_requests_duration_seconds_sum{zone=\"z\",method=\"tools/call\"} 1.234\n") != std::string::npos);
    BOOST_TEST(text.find("tool=\"say \\\"hi\\\"\"") != std::string::npos);
    BOOST_TEST(text.find("reason=\"session_not_found\"} 4\n") != std::string::npos);
    BOOST_TEST(text.find("# TYPE mcp_session_requests_duration_seconds histogram\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(exact_statuses_and_error_classes_are_exposed_only_where_counted)
{
    traffic_figures f;
    f.statuses[method_index("tools/call")][status_index(429)] = 2;
    f.statuses[method_index("tools/call")][status_index(418)] = 1;
    f.errors[method_index("tools/list")][static_cast<std::size_t>(error_class::method_not_found)] = 5;
    f.errors[method_index("tools/call")][static_cast<std::size_t>(error_class::tool_error)] = 1;
    const std::string text = traffic_prometheus("z", f);
    BOOST_TEST(text.find("# TYPE mcp_session_http_responses_total counter\n") != std::string::npos);
    BOOST_TEST(text.find("mcp_session_http_responses_total{zone=\"z\",method=\"tools/call\",status=\"429\"} 2\n") != std::string::npos);
    BOOST_TEST(text.find("mcp_session_http_responses_total{zone=\"z\",method=\"tools/call\",status=\"other\"} 1\n") != std::string::npos);
    BOOST_TEST(text.find("status=\"200\"") == std::string::npos);
    BOOST_TEST(text.find("# TYPE mcp_session_jsonrpc_errors_total counter\n") != std::string::npos);
    BOOST_TEST(text.find("mcp_session_jsonrpc_errors_total{zone=\"z\",method=\"tools/list\",class=\"method_not_found\"} 5\n") != std::string::npos);
    BOOST_TEST(text.find("mcp_session_jsonrpc_errors_total{zone=\"z\",method=\"tools/call\",class=\"tool_error\"} 1\n") != std::string::npos);
    BOOST_TEST(text.find("class=\"parse_error\"") == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
