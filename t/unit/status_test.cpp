#include "mcp_session/status.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(status)

zone_status sample()
{
    zone_status s;
    s.zone = "mcp";
    s.size = 1048576;
    s.bytes_used = 8192;
    s.bytes_free = 1040384;
    s.sessions = 3;
    s.sessions_with_ring = 1;
    s.open_streams = 1;
    s.counters.created = 5;
    s.counters.deleted = 2;
    s.counters.sessions_healed = 9;
    s.counters.heartbeats = 7;
    s.counters.evicted = 4;
    s.counters.evicted_unused = 3;
    s.counters.evicted_established = 1;
    s.counters.rings_allocated = 6;
    s.counters.rings_freed = 5;
    s.counters.backend_stream_events = 11;
    return s;
}

BOOST_AUTO_TEST_CASE(json_has_every_field)
{
    const auto body = nlohmann::json::parse(status_json(sample()));
    BOOST_TEST(body["zone"] == "mcp");
    BOOST_TEST(body["size"] == 1048576);
    BOOST_TEST(body["sessions"] == 3);
    BOOST_TEST(body["open_streams"] == 1);
    BOOST_TEST(body["counters"]["created"] == 5);
    BOOST_TEST(body["counters"]["deleted"] == 2);
    BOOST_TEST(body["counters"]["heartbeats"] == 7);
    BOOST_TEST(body["counters"]["evicted"] == 4);
    BOOST_TEST(body["counters"]["evicted_unused"] == 3);
    BOOST_TEST(body["counters"]["evicted_established"] == 1);
    BOOST_TEST(body["counters"]["rings_allocated"] == 6);
    BOOST_TEST(body["counters"]["rings_freed"] == 5);
    BOOST_TEST(body["counters"]["publish_no_room"] == 0);
    BOOST_TEST(body["counters"]["sessions_no_room"] == 0);
    BOOST_TEST(body["counters"]["streams_no_room"] == 0);
    BOOST_TEST(body["counters"]["markers_no_room"] == 0);
    BOOST_TEST(body["counters"]["post_stream_resumes"] == 0);
    BOOST_TEST(body["counters"]["sessions_healed"] == 9);
    BOOST_TEST(body["counters"]["heals_failed"] == 0);
    BOOST_TEST(body["counters"]["backend_streams_opened"] == 0);
    BOOST_TEST(body["counters"]["backend_stream_events"] == 11);
    BOOST_TEST(body["counters"]["backend_stream_events_unrecorded"] == 0);
    BOOST_TEST(body["counters"]["shared_lookups"] == 0);
    BOOST_TEST(body["counters"]["redis_errors"] == 0);
    BOOST_TEST(body["counters"].size() == 41u);
    BOOST_TEST(body["upstreams"].empty());
    BOOST_TEST(!body.contains("redis"));  // a zone without redis= has no link
}

BOOST_AUTO_TEST_CASE(redis_link_state_when_clustered)
{
    zone_status s = sample();
    s.redis_up = 0;
    BOOST_TEST(nlohmann::json::parse(status_json(s))["redis"]["link"] == "down");
    BOOST_TEST(status_prometheus(s).find("mcp_session_redis_up{zone=\"mcp\"} 0\n") != std::string::npos);
    s.redis_up = 1;
    BOOST_TEST(nlohmann::json::parse(status_json(s))["redis"]["link"] == "up");
    BOOST_TEST(status_prometheus(s).find("mcp_session_redis_up{zone=\"mcp\"} 1\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(prometheus_has_help_type_and_zone_label)
{
    const std::string text = status_prometheus(sample());
    BOOST_TEST(text.find("# HELP mcp_session_zone_sessions Live sessions in the zone.\n") != std::string::npos);
    BOOST_TEST(text.find("# TYPE mcp_session_zone_sessions gauge\n") != std::string::npos);
    BOOST_TEST(text.find("mcp_session_zone_sessions{zone=\"mcp\"} 3\n") != std::string::npos);
    BOOST_TEST(text.find("# TYPE mcp_session_created_total counter\n") != std::string::npos);
    BOOST_TEST(text.find("mcp_session_created_total{zone=\"mcp\"} 5\n") != std::string::npos);
    BOOST_TEST(text.back() == '\n');
}

BOOST_AUTO_TEST_CASE(label_values_are_escaped)
{
    zone_status s = sample();
    s.zone = "a\"b\\c";
    BOOST_TEST(status_prometheus(s).find("{zone=\"a\\\"b\\\\c\"}") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(sessions_per_upstream_server)
{
    zone_status s = sample();
    const auto add = [&s](std::string_view name, std::uint64_t sessions) {
        upstream_count& u = s.upstream_sessions[s.upstreams++];
        u.sessions = sessions;
        u.size = static_cast<std::uint8_t>(name.size());
        std::copy(name.begin(), name.end(), u.name);
    };
    add("127.0.0.1:8081", 10);
    add("unix:/run/a\"b.sock", 2);
    const auto body = nlohmann::json::parse(status_json(s));
    BOOST_TEST(body["upstreams"].size() == 2u);
    BOOST_TEST(body["upstreams"]["127.0.0.1:8081"] == 10);
    BOOST_TEST(body["upstreams"]["unix:/run/a\"b.sock"] == 2);
    const std::string text = status_prometheus(s);
    BOOST_TEST(text.find("# TYPE mcp_session_upstream_sessions gauge\n") != std::string::npos);
    BOOST_TEST(text.find("mcp_session_upstream_sessions{zone=\"mcp\",upstream=\"127.0.0.1:8081\"} 10\n") !=
               std::string::npos);
    BOOST_TEST(text.find("mcp_session_upstream_sessions{zone=\"mcp\",upstream=\"unix:/run/a\\\"b.sock\"} 2\n") !=
               std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
