#include "mcp_session/protocol.hpp"

#include <boost/test/unit_test.hpp>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(protocol)

BOOST_AUTO_TEST_CASE(absent_header_means_2025_03_26)
{
    const protocol_verdict v = classify_protocol_version(std::nullopt);
    BOOST_TEST((v.era == protocol_era::session));
    BOOST_TEST(v.version == "2025-03-26");
}

BOOST_AUTO_TEST_CASE(session_era_revisions)
{
    for (const char* version : {"2025-03-26", "2025-06-18", "2025-11-25", " 2025-06-18 "}) {
        BOOST_TEST((classify_protocol_version(std::string_view(version)).era == protocol_era::session), version);
    }
}

BOOST_AUTO_TEST_CASE(modern_revisions_and_later)
{
    for (const char* version : {"2026-07-28", "2027-01-01", "2099-12-31"}) {
        BOOST_TEST((classify_protocol_version(std::string_view(version)).era == protocol_era::modern), version);
    }
}

BOOST_AUTO_TEST_CASE(every_session_era_date_passes_and_earlier_ones_are_unsupported)
{
    // What the backend negotiated is the backend's business: 2024-11-05
    // (the first revision) and dates between revisions pass by default.
    for (const char* version : {"2024-11-05", "2025-03-26", "2025-12-01", "2026-07-27"}) {
        BOOST_TEST((classify_protocol_version(std::string_view(version)).era == protocol_era::session), version);
    }
    for (const char* version : {"1999-01-01", "2024-11-04", "0000-00-00"}) {
        BOOST_TEST((classify_protocol_version(std::string_view(version)).era == protocol_era::unsupported), version);
    }
}

BOOST_AUTO_TEST_CASE(garbage_is_malformed)
{
    for (const char* version : {"", "latest", "2025-6-18", "2025/06/18", "2025-06-18x", "20250618"}) {
        BOOST_TEST((classify_protocol_version(std::string_view(version)).era == protocol_era::malformed), version);
    }
}

BOOST_AUTO_TEST_CASE(operators_can_narrow_the_session_era)
{
    const std::vector<std::string> only_latest = {"2025-11-25"};
    BOOST_TEST((classify_protocol_version(std::string_view("2025-11-25"), only_latest).era == protocol_era::session));
    BOOST_TEST((classify_protocol_version(std::string_view("2025-06-18"), only_latest).era == protocol_era::unsupported));
    BOOST_TEST((classify_protocol_version(std::nullopt, only_latest).era == protocol_era::unsupported));
    BOOST_TEST((classify_protocol_version(std::string_view("2026-07-28"), only_latest).era == protocol_era::modern));
}

BOOST_AUTO_TEST_CASE(origin_hosts_are_parsed_strictly)
{
    BOOST_TEST(origin_host("http://localhost:6274").value() == "localhost");
    BOOST_TEST(origin_host("https://App.Example.COM").value() == "app.example.com");
    BOOST_TEST(origin_host("http://[::1]:8080").value() == "[::1]");
    BOOST_TEST(!origin_host("null").has_value());
    BOOST_TEST(!origin_host("").has_value());
    BOOST_TEST(!origin_host("localhost").has_value());
    BOOST_TEST(!origin_host("http://").has_value());
    BOOST_TEST(!origin_host("http://evil.com@localhost").has_value());
    BOOST_TEST(!origin_host("http://localhost/path").has_value());
    BOOST_TEST(!origin_host("http://localhost:80x").has_value());
    BOOST_TEST(!origin_host("http://[::1").has_value());
    // Found by t/fuzz/origin_fuzz.cpp: any text before "://" was a scheme.
    BOOST_TEST(!origin_host("evil#://localhost").has_value());
    BOOST_TEST(!origin_host("1http://localhost").has_value());
    BOOST_TEST(origin_host("chrome-extension://abc").value() == "abc");
}

BOOST_AUTO_TEST_CASE(default_policy_allows_loopback_and_server_names_only)
{
    origin_policy policy;
    policy.hosts = {"mcp.example.com"};
    BOOST_TEST(origin_allowed("http://localhost:3000", policy));
    BOOST_TEST(origin_allowed("http://127.0.0.1", policy));
    BOOST_TEST(origin_allowed("http://[::1]:9", policy));
    BOOST_TEST(origin_allowed("https://MCP.example.com", policy));
    BOOST_TEST(!origin_allowed("https://evil.example", policy));
    BOOST_TEST(!origin_allowed("https://localhost.evil.example", policy));
    BOOST_TEST(!origin_allowed("null", policy));
}

BOOST_AUTO_TEST_CASE(configured_origins_replace_the_default)
{
    origin_policy policy;
    policy.origins = {"https://app.example.com"};
    BOOST_TEST(origin_allowed("https://app.example.com", policy));
    BOOST_TEST(origin_allowed("HTTPS://APP.EXAMPLE.COM", policy));
    BOOST_TEST(!origin_allowed("http://app.example.com", policy));
    BOOST_TEST(!origin_allowed("http://localhost", policy));
    policy.any = true;
    BOOST_TEST(origin_allowed("https://anything.example", policy));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(accept_header)

BOOST_AUTO_TEST_CASE(the_stream_type_must_be_named_with_a_positive_quality)
{
    BOOST_TEST(accepts_event_stream("text/event-stream"));
    BOOST_TEST(accepts_event_stream("application/json, text/event-stream"));
    BOOST_TEST(accepts_event_stream("Text/Event-Stream ; charset=utf-8"));
    BOOST_TEST(accepts_event_stream("text/event-stream;q=0.001"));
    BOOST_TEST(accepts_event_stream("text/event-stream;q=1.000"));
    BOOST_TEST(accepts_event_stream("text/html;q=0, text/event-stream;q=0.5"));
    BOOST_TEST(!accepts_event_stream("text/event-stream;q=0"));
    BOOST_TEST(!accepts_event_stream("text/event-stream; q=0.000"));
    BOOST_TEST(!accepts_event_stream("text/event-stream;q=2"));
    BOOST_TEST(!accepts_event_stream("text/event-stream;q=abc"));
    BOOST_TEST(!accepts_event_stream("*/*"));
    BOOST_TEST(!accepts_event_stream("text/*"));
    BOOST_TEST(!accepts_event_stream("application/json"));
    BOOST_TEST(!accepts_event_stream("text/event-streamx"));
    BOOST_TEST(!accepts_event_stream(""));
}

BOOST_AUTO_TEST_SUITE_END()
