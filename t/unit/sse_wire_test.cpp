#include "mcp_session/sse_wire.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace mcp_session;

namespace {

const wire_form before_priming = wire_form_for(stream_vocabulary::compatible, "2025-06-18");
const wire_form priming = wire_form_for(stream_vocabulary::compatible, "2025-11-25");
const wire_form seed_old = wire_form_for(stream_vocabulary::seed, "2025-03-26");
const wire_form seed_priming = wire_form_for(stream_vocabulary::seed, "2025-11-25");

}  // namespace

BOOST_AUTO_TEST_SUITE(sse_wire)

BOOST_AUTO_TEST_CASE(priming_starts_at_2025_11_25)
{
    BOOST_TEST(!wire_form_for(stream_vocabulary::compatible, "2024-11-05").priming);
    BOOST_TEST(!wire_form_for(stream_vocabulary::compatible, "2025-03-26").priming);
    BOOST_TEST(!wire_form_for(stream_vocabulary::compatible, "2025-06-18").priming);
    BOOST_TEST(wire_form_for(stream_vocabulary::compatible, "2025-11-25").priming);
    BOOST_TEST(wire_form_for(stream_vocabulary::compatible, "2026-07-28").priming);
    BOOST_TEST(!wire_form_for(stream_vocabulary::compatible, "").priming);
    BOOST_TEST(!wire_form_for(stream_vocabulary::compatible, "2025-11-25x").priming);
}

BOOST_AUTO_TEST_CASE(every_message_is_event_message_in_the_compatible_vocabulary)
{
    for (const wire_form& form : {before_priming, priming}) {
        std::string out;
        append_message(out, form, 4, event_kind::progress, R"({"jsonrpc":"2.0","method":"notifications/progress"})");
        append_message(out, form, 5, event_kind::message, "{}");
        BOOST_TEST(out == "id: 4\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
                          "id: 5\nevent: message\ndata: {}\n\n");
    }
}

BOOST_AUTO_TEST_CASE(the_seed_vocabulary_names_progress)
{
    std::string out;
    append_message(out, seed_old, 4, event_kind::progress, "{}");
    append_message(out, seed_old, 5, event_kind::message, "{}");
    BOOST_TEST(out == "id: 4\nevent: progress\ndata: {}\n\nid: 5\nevent: message\ndata: {}\n\n");
}

BOOST_AUTO_TEST_CASE(connect_marker_per_revision)
{
    std::string out;
    append_connected(out, before_priming, 7, "s1", 1000);
    BOOST_TEST(out == ": connected\n\n");
    out.clear();
    append_connected(out, priming, 7, "s1", 1000);
    BOOST_TEST(out == "id: 7\ndata: \n\n");
    out.clear();
    append_connected(out, seed_old, 0, "s\"1\\", 1000);
    BOOST_TEST(out == "id: 0\nevent: init\ndata: {\"session_id\":\"s\\\"1\\\\\",\"connected_at\":1000}\n\n");
}

BOOST_AUTO_TEST_CASE(heartbeat_per_revision)
{
    std::string out;
    append_heartbeat(out, before_priming, 3, 5);
    BOOST_TEST(out == ": heartbeat\n\n");
    out.clear();
    append_heartbeat(out, priming, 3, 5);
    BOOST_TEST(out == "id: 3\ndata: \n\n");
    out.clear();
    append_heartbeat(out, seed_priming, 3, 5);
    BOOST_TEST(out == "id: 3\nevent: heartbeat\ndata: {\"ts\":5}\n\n");
}

BOOST_AUTO_TEST_CASE(lagged_per_revision)
{
    std::string out;
    append_lagged(out, before_priming, 9, 5);
    BOOST_TEST(out == ": lagged {\"dropped\":5}\n\n");
    out.clear();
    append_lagged(out, priming, 9, 5);
    BOOST_TEST(out == ": lagged {\"dropped\":5}\n\nid: 9\ndata: \n\n");
    out.clear();
    append_lagged(out, seed_old, 9, 5);
    BOOST_TEST(out == "id: 9\nevent: lagged\ndata: {\"dropped\":5}\n\n");
    out.clear();
    append_lagged(out, priming, 18446744073709551615ULL, 18446744073709551615ULL);
    BOOST_TEST(out.size() <= max_framing_bytes);
}

BOOST_AUTO_TEST_CASE(retry_only_where_the_revision_has_it)
{
    BOOST_TEST(closing_text(before_priming).empty());
    BOOST_TEST(closing_text(seed_old).empty());
    BOOST_TEST(closing_text(priming) == "retry: 1000\n\n");
    BOOST_TEST(closing_text(seed_priming) == "retry: 1000\n\n");
}

BOOST_AUTO_TEST_SUITE_END()
