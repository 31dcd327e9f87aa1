#include "mcp_session/answer_watch.hpp"
#include "mcp_session/response_scan.hpp"
#include "mcp_session/sse_relay.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace mcp_session;
using namespace std::string_literals;

namespace {

struct relay_run {
    std::string out;
    relayed_batch events;
    bool passthrough = false;
    bool responded = false;
    std::size_t oversized = 0;
    std::uint64_t next_index = 0;
    std::size_t most_held = 0;
};

// Feeds `input` cut at `cuts` (ascending offsets), then finishes.
relay_run relay(std::string_view input, const std::vector<std::size_t>& cuts, bool priming = false,
                std::size_t max = 1024, std::uint64_t stream = 7)
{
    sse_relay r(stream, priming, max);
    relay_run run;
    std::size_t at = 0;
    for (std::size_t cut : cuts) {
        r.feed(input.substr(at, cut - at), run.out, run.events);
        run.most_held = std::max(run.most_held, r.held());
        at = cut;
    }
    r.feed(input.substr(at), run.out, run.events);
    run.most_held = std::max(run.most_held, r.held());
    r.finish(run.out);
    run.passthrough = r.passthrough();
    run.responded = r.responded();
    run.oversized = r.oversized();
    run.next_index = r.next_index();
    return run;
}

relay_run relay_whole(std::string_view input, bool priming = false, std::size_t max = 1024)
{
    return relay(input, {}, priming, max);
}

relay_run relay_bytewise(std::string_view input, bool priming = false, std::size_t max = 1024)
{
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < input.size(); ++i) {
        cuts.push_back(i);
    }
    return relay(input, cuts, priming, max);
}

bool same(const relay_run& a, const relay_run& b)
{
    if (a.out != b.out || a.events.size() != b.events.size() || a.passthrough != b.passthrough ||
        a.responded != b.responded || a.oversized != b.oversized || a.next_index != b.next_index) {
        return false;
    }
    for (std::size_t i = 0; i < a.events.size(); ++i) {
        if (a.events[i].index != b.events[i].index || a.events[i].fields != b.events[i].fields ||
            a.events[i].response != b.events[i].response) {
            return false;
        }
    }
    return true;
}

// What a client resuming at P.(k-1) is sent for the event, by the ring.
std::string replayed(const relayed_event& e, std::uint64_t stream = 7)
{
    return "id: " + std::to_string(stream) + "." + std::to_string(e.index) + "\n" + e.fields + "\n";
}

bool is_response(std::string_view data)
{
    sse_relay r(1, false, 1 << 20);
    std::string out;
    relayed_batch events;
    r.feed("data: " + std::string(data) + "\n\n", out, events);
    return events.size() == 1 && events[0].response && r.responded();
}

const std::string representative_streams[] = {
    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
    ": keepalive\n\n"
    "event: message\r\nid: backend-1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n",
    "\xEF\xBB\xBFid: 0\rdata: \r\rretry: 500\rdata: line one\rdata: line two \xE2\x82\xAC \xF0\x9F\x98\x80\r\r",
    "data:x\n:comment inside\ndata\nfield-without-colon\nid\n\n\n\n: tail comment\ndata: unfinished",
    "data: {\"id\":2,\n"
    "data: \"error\":{\"code\":-1,\"message\":\"\xC3\xA9\"}}\n\ndata: ok\n\ndata: bad \xC3\x28 byte\n\ndata: after\n\n",
    "data: " + std::string(300, 'x') + "\n\ndata: small\n\nid: " + std::string(200, '9') + "\ndata: y\n\n",
    "data: a\n\ndata: b\0c\r\n\r\n"s,
};

// `stream` relayed (stream 7, events up to 1024 bytes) in pieces of
// `step` bytes, with an answer watch.
struct watched_relay_run {
    error_counts counts{};
    std::size_t oversized = 0;
};

watched_relay_run relay_watched(const std::string& stream, std::size_t step, bool tools_call)
{
    answer_watch watch(answer_watch::form::event_stream, tools_call);
    sse_relay r(7, false, 1024);
    r.watch_answer(&watch);
    std::string out;
    relayed_batch events;
    for (std::size_t at = 0; at < stream.size(); at += step) {
        r.feed(std::string_view(stream).substr(at, step), out, events);
    }
    r.finish(out);
    return {watch.counts(), r.oversized()};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sse_relay_suite)

BOOST_AUTO_TEST_CASE(an_event_gets_nginx_id_and_is_recorded)
{
    const relay_run run = relay_whole("event: message\ndata: {}\n\n");
    BOOST_TEST(run.out == "id: 7.1\nevent: message\ndata: {}\n\n");
    BOOST_REQUIRE(run.events.size() == 1u);
    BOOST_TEST(run.events[0].index == 1u);
    BOOST_TEST(run.events[0].fields == "event: message\ndata: {}\n");
    BOOST_TEST(!run.events[0].response);
    BOOST_TEST(run.next_index == 2u);
    BOOST_TEST(replayed(run.events[0]) == run.out);
}

BOOST_AUTO_TEST_CASE(priming_on_off_and_backend_primed)
{
    BOOST_TEST(relay_whole("data: x\n\n", true).out == "id: 7.0\ndata: \n\nid: 7.1\ndata: x\n\n");
    BOOST_TEST(relay_whole("data: x\n\n", false).out == "id: 7.1\ndata: x\n\n");
    // A comment or blank line first: nginx primes.
    BOOST_TEST(relay_whole(": hi\n\ndata: x\n\n", true).out == "id: 7.0\ndata: \n\n: hi\n\nid: 7.1\ndata: x\n\n");
    BOOST_TEST(relay_whole("\ndata: x\n\n", true).out == "id: 7.0\ndata: \n\n\nid: 7.1\ndata: x\n\n");
    // The backend primes itself: its priming event is P.1.
    const relay_run primed = relay_whole("id: abc\ndata: \n\ndata: x\n\n", true);
    BOOST_TEST(primed.out == "id: 7.1\ndata: \n\nid: 7.2\ndata: x\n\n");
    BOOST_REQUIRE(primed.events.size() == 2u);
    BOOST_TEST(primed.events[0].fields == "data: \n");
    // "id" without a colon is an id field too.
    BOOST_TEST(relay_whole("id\ndata: \n\n", true).out == "id: 7.1\ndata: \n\n");
    // Split right after "i" or "id": the same decision.
    BOOST_TEST(relay("id: 1\ndata: \n\n", {1}, true).out == "id: 7.1\ndata: \n\n");
    BOOST_TEST(relay("id: 1\ndata: \n\n", {2}, true).out == "id: 7.1\ndata: \n\n");
    BOOST_TEST(relay("idx: 1\n\n", {2}, true).out == "id: 7.0\ndata: \n\nid: 7.1\nidx: 1\n\n");
    // Nothing yet at all: nothing goes out, priming included.
    std::string out;
    relayed_batch events;
    sse_relay r(7, true, 1024);
    r.feed("data: x", out, events);
    BOOST_TEST(out.empty());
    r.feed("\n", out, events);
    BOOST_TEST(out == "id: 7.0\ndata: \n\nid: 7.1\ndata: x\n");
}

BOOST_AUTO_TEST_CASE(ids_are_rewritten_and_unique)
{
    const relay_run run = relay_whole("id: 5\ndata: a\n\nid: 5\ndata: b\nid: 6\n\ndata: c\n\nid: x\n\n", false, 1024);
    BOOST_TEST(run.out == "id: 7.1\ndata: a\n\nid: 7.2\ndata: b\n\nid: 7.3\ndata: c\n\nid: 7.4\n\n");
    BOOST_REQUIRE(run.events.size() == 4u);
    for (std::size_t i = 0; i < run.events.size(); ++i) {
        BOOST_TEST(run.events[i].index == i + 1);
        BOOST_TEST(run.events[i].fields.find("id") == std::string::npos);
    }
    BOOST_TEST(run.events[3].fields == "");  // an id-only event: replayed as "id: 7.4\n\n", as it went live
    BOOST_TEST(run.next_index == 5u);
    std::string joined;
    for (const auto& e : run.events) {
        joined += replayed(e);
    }
    BOOST_TEST(joined == run.out);
    // Another stream number: other ids.
    BOOST_TEST(relay("data: a\n\n", {}, false, 1024, 18446744073709551615ull).out ==
               "id: 18446744073709551615.1\ndata: a\n\n");
}

BOOST_AUTO_TEST_CASE(line_ends_become_lf)
{
    const std::string lf = "data: a\ndata: b\n\n: c\n\ndata: d\n\n";
    const relay_run expected = relay_whole(lf);
    for (const std::string& variant : {"data: a\r\ndata: b\r\n\r\n: c\r\n\r\ndata: d\r\n\r\n"s,
                                       "data: a\rdata: b\r\r: c\r\rdata: d\r\r"s,
                                       "data: a\r\ndata: b\r\r: c\n\r\ndata: d\r\n\n"s}) {
        BOOST_TEST(same(relay_whole(variant), expected));
        BOOST_TEST(same(relay_bytewise(variant), expected));
    }
    BOOST_TEST(expected.out == "id: 7.1\ndata: a\ndata: b\n\n: c\n\nid: 7.2\ndata: d\n\n");
    // CR ends one call, LF starts the next: one line end, not two.
    std::string out;
    relayed_batch events;
    sse_relay r(7, false, 1024);
    r.feed("data: a\r", out, events);
    BOOST_TEST(out == "id: 7.1\ndata: a\n");  // the line goes out at its CR
    r.feed("\ndata: b\r", out, events);
    r.feed("\r", out, events);
    r.feed("\n", out, events);  // CR, CR LF: two line ends, the event's last line and the blank one
    BOOST_TEST(out == "id: 7.1\ndata: a\ndata: b\n\n");
    BOOST_TEST(events.size() == 1u);
}

BOOST_AUTO_TEST_CASE(every_split_gives_the_same_stream)
{
    for (const std::string& stream : representative_streams) {
        for (const bool priming : {false, true}) {
            for (const std::size_t max : {std::size_t{1024}, std::size_t{40}, std::size_t{0}}) {
                const relay_run whole = relay(stream, {}, priming, max);
                for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
                    BOOST_TEST_CONTEXT("cut " << cut << " max " << max << " priming " << priming)
                    {
                        BOOST_TEST(same(relay(stream, {cut}, priming, max), whole));
                    }
                }
                BOOST_TEST(same(relay_bytewise(stream, priming, max), whole));
                std::mt19937 random(1234);
                for (int round = 0; round < 50; ++round) {
                    std::vector<std::size_t> cuts;
                    for (std::size_t i = 1; i < stream.size(); ++i) {
                        if (random() % 4 == 0) {
                            cuts.push_back(i);
                        }
                    }
                    BOOST_TEST(same(relay(stream, cuts, priming, max), whole));
                }
                BOOST_TEST(whole.most_held <= max + 8);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(the_representative_streams_as_expected)
{
    const relay_run first = relay_whole(representative_streams[0], true);
    BOOST_TEST(first.out == "id: 7.0\ndata: \n\n"
                            "id: 7.1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
                            ": keepalive\n\n"
                            "id: 7.2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n");
    BOOST_REQUIRE(first.events.size() == 2u);
    BOOST_TEST(!first.events[0].response);
    BOOST_TEST(first.events[1].response);
    BOOST_TEST(first.responded);

    // A byte order mark goes out first and is not part of the first line.
    const relay_run second = relay_whole(representative_streams[1], true);
    BOOST_TEST(second.out == "\xEF\xBB\xBFid: 7.1\ndata: \n\n"
                             "id: 7.2\nretry: 500\ndata: line one\ndata: line two \xE2\x82\xAC \xF0\x9F\x98\x80\n\n");
    BOOST_TEST(second.events.size() == 2u);

    const relay_run third = relay_whole(representative_streams[2]);
    BOOST_TEST(third.out == "id: 7.1\ndata:x\n:comment inside\ndata\nfield-without-colon\n\n\n\n: tail comment\n"
                            "data: unfinished");
    BOOST_REQUIRE(third.events.size() == 1u);
    BOOST_TEST(third.events[0].fields == "data:x\n:comment inside\ndata\nfield-without-colon\n");
}

BOOST_AUTO_TEST_CASE(comments_pass_untouched)
{
    const relay_run run = relay_whole(": one\n:two\n\n:\n\ndata: a\n\n: three\n");
    BOOST_TEST(run.out == ": one\n:two\n\n:\n\nid: 7.1\ndata: a\n\n: three\n");
    BOOST_REQUIRE(run.events.size() == 1u);
    BOOST_TEST(run.events[0].fields == "data: a\n");
}

BOOST_AUTO_TEST_CASE(oversized_by_one_long_line)
{
    const std::string big = "data: " + std::string(100, 'x');
    const std::string input = big + "\n\ndata: small\n\n";
    for (const relay_run& run : {relay_whole(input, false, 16), relay_bytewise(input, false, 16)}) {
        BOOST_TEST(run.out == "id: 7.1\n" + big + "\n\nid: 7.2\ndata: small\n\n");
        BOOST_REQUIRE(run.events.size() == 1u);
        BOOST_TEST(run.events[0].index == 2u);
        BOOST_TEST(run.oversized == 1u);
        BOOST_TEST(run.most_held <= 16u + 8u);
    }
    // Byte by byte, the long line goes out as it comes, not at its end.
    sse_relay r(7, false, 16);
    std::string out;
    relayed_batch events;
    r.feed(big.substr(0, 50), out, events);
    BOOST_TEST(out == "id: 7.1\n" + big.substr(0, 50));
    BOOST_TEST(r.held() == 0u);
}

BOOST_AUTO_TEST_CASE(oversized_by_many_lines)
{
    // Five lines of 10 bytes (with LF) against 30: the 4th passes the limit.
    const std::string input = "data: 123\ndata: 456\ndata: 789\ndata: abc\ndata: def\n\ndata: ok\n\n";
    const relay_run run = relay_whole(input, false, 30);
    BOOST_TEST(run.out == "id: 7.1\ndata: 123\ndata: 456\ndata: 789\ndata: abc\ndata: def\n\nid: 7.2\ndata: ok\n\n");
    BOOST_REQUIRE(run.events.size() == 1u);
    BOOST_TEST(run.events[0].index == 2u);
    BOOST_TEST(run.oversized == 1u);
    // Exactly at the limit: recorded.
    const relay_run exact = relay_whole("data: 123\ndata: 456\ndata: 789\n\n", false, 30);
    BOOST_REQUIRE(exact.events.size() == 1u);
    BOOST_TEST(exact.events[0].fields.size() == 30u);
    BOOST_TEST(exact.oversized == 0u);
    // An oversized response still counts as the answer.
    const std::string answer = "data: {\"id\":1,\"result\":{\"text\":\"" + std::string(5000, 'y') + "\"}}\n\n";
    for (const relay_run& r : {relay_whole(answer, false, 64), relay_bytewise(answer, false, 64)}) {
        BOOST_TEST(r.events.empty());
        BOOST_TEST(r.oversized == 1u);
        BOOST_TEST(r.responded);
        BOOST_TEST(r.most_held <= 64u + 8u);
    }
}

BOOST_AUTO_TEST_CASE(nul_switches_to_passthrough_mid_event)
{
    const std::string before = "data: ok\n\n";
    const std::string rest = "data: a\0b\n\ndata: c\n\n"s;
    for (const relay_run& run : {relay_whole(before + rest, true), relay_bytewise(before + rest, true)}) {
        BOOST_TEST(run.out == "id: 7.0\ndata: \n\nid: 7.1\ndata: ok\n\n" + rest);
        BOOST_TEST(run.passthrough);
        BOOST_TEST(run.events.size() == 1u);
        BOOST_TEST(run.next_index == 2u);
    }
    // After a field line of the event went out, the rest is still exactly the input.
    const relay_run mid = relay_whole("data: a\ndata: b\0\n\n"s);
    BOOST_TEST(mid.out == "id: 7.1\ndata: a\ndata: b\0\n\n"s);
    BOOST_TEST(mid.events.empty());
    // Not SSE from the first line: no priming, the input unchanged.
    const std::string binary = "\xEF\xBB\xBF\0\x01\x02\n\n"s;
    BOOST_TEST(relay_whole(binary, true).out == binary);
    BOOST_TEST(relay_bytewise(binary, true).out == binary);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_switches_to_passthrough)
{
    const std::string bad_sequences[] = {
        "\xC0\xAF",          // overlong '/'
        "\xE0\x80\xAF",      // overlong, three bytes
        "\xF0\x80\x80\xAF",  // overlong, four bytes
        "\xED\xA0\x80",      // surrogate U+D800
        "\xF4\x90\x80\x80",  // U+110000
        "\xF5\x80\x80\x80",
        "\x80",              // a lone continuation byte
        "\xE2\x82x",         // cut short
        "\xE2\x82\n",        // cut by a line end
        "\xFF",
    };
    for (const std::string& bad : bad_sequences) {
        const std::string tail = "data: x" + bad + "y\n\ndata: z\n\n";
        const std::string input = "data: ok\n\n" + tail;
        for (const relay_run& run : {relay_whole(input), relay_bytewise(input)}) {
            BOOST_TEST_CONTEXT("sequence " << bad.size())
            {
                BOOST_TEST(run.out == "id: 7.1\ndata: ok\n\n" + tail);
                BOOST_TEST(run.passthrough);
                BOOST_TEST(run.events.size() == 1u);
            }
        }
    }
    // Valid sequences, also split between calls, are text.
    const std::string good = "data: \xC2\xA9 \xE2\x82\xAC \xED\x9F\xBF \xEE\x80\x80 \xF0\x90\x80\x80 \xF4\x8F\xBF\xBF\n\n";
    const relay_run run = relay_bytewise(good);
    BOOST_TEST(!run.passthrough);
    BOOST_REQUIRE(run.events.size() == 1u);
    BOOST_TEST(run.events[0].fields == good.substr(0, good.size() - 1));
}

BOOST_AUTO_TEST_CASE(response_detection)
{
    BOOST_TEST(is_response(R"({"jsonrpc":"2.0","id":1,"result":{"content":[]}})"));
    BOOST_TEST(is_response(R"({"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"no"}})"));
    BOOST_TEST(is_response(R"( { "result" : null , "id" : null } )"));
    BOOST_TEST(is_response(R"([{"id":1,"result":1},{"id":2,"error":{}}])"));
    BOOST_TEST(is_response(R"({"\u0069d":1,"res\u0075lt":true})"));  // escaped keys are the same keys
    BOOST_TEST(is_response(R"({"id":1,"result":{"method":"nested keys do not count","x":[1,-2.5e+3,0.1,"\ud800"]}})"));
    BOOST_TEST(is_response(R"({"id":1,"result":"\"method\":1"})"));
    // Not responses.
    BOOST_TEST(!is_response(R"({"jsonrpc":"2.0","method":"notifications/progress","params":{}})"));
    BOOST_TEST(!is_response(R"({"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{}})"));
    BOOST_TEST(!is_response(R"({"id":1,"result":{},"method":"x"})"));
    BOOST_TEST(!is_response(R"({"id":1})"));
    BOOST_TEST(!is_response(R"({"result":1})"));
    BOOST_TEST(!is_response(R"([])"));
    BOOST_TEST(!is_response(R"([{"id":1,"result":1},{"method":"x"}])"));
    BOOST_TEST(!is_response(R"([{"id":1,"result":1},2])"));
    BOOST_TEST(!is_response(R"([[{"id":1,"result":1}]])"));
    BOOST_TEST(!is_response("not json"));
    BOOST_TEST(!is_response(""));
    BOOST_TEST(!is_response("1"));
    BOOST_TEST(!is_response(R"("id")"));
    BOOST_TEST(!is_response(R"({"id":1,"result":1} x)"));
    BOOST_TEST(!is_response(R"({"id":1,"result":1}{})"));
    BOOST_TEST(!is_response(R"({"id":1,"result":01})"));
    BOOST_TEST(!is_response(R"({"id":1,"result":1.})"));
    BOOST_TEST(!is_response(R"({"id":1,"result":tru})"));
    BOOST_TEST(!is_response(R"({"id":1,"result":"a)"));
    BOOST_TEST(!is_response(R"({"id":1,"result":"\x"})"));
    BOOST_TEST(!is_response(R"({"id":1,"result":[1,]})"));
    BOOST_TEST(!is_response(R"({"id":1,"result":{"a":1]})"));
    BOOST_TEST(!is_response(R"({"id":1,"result":1,})"));
    BOOST_TEST(!is_response(R"({"idx":1,"result":1})"));
    BOOST_TEST(!is_response(R"({"id":1,"results":1})"));
    BOOST_TEST(!is_response(std::string(1, '{') + std::string(2000, '[')));
    // Data split over several data: lines is joined with LF (JSON whitespace).
    const relay_run split = relay_whole("data: {\"id\":1,\ndata:\"result\"\ndata: :2}\n\n");
    BOOST_REQUIRE(split.events.size() == 1u);
    BOOST_TEST(split.events[0].response);
    // ...and a line break inside a token breaks it.
    BOOST_TEST(!relay_whole("data: {\"id\":1,\"res\ndata: ult\":2}\n\n").events.at(0).response);
    // Every event is checked on its own.
    const relay_run two = relay_whole("data: {\"id\":1\n\ndata: ,\"result\":2}\n\n");
    BOOST_TEST(!two.events.at(0).response);
    BOOST_TEST(!two.events.at(1).response);
    BOOST_TEST(!two.responded);
    // An event without data answers nothing.
    BOOST_TEST(!relay_whole("event: message\n\n").responded);
}

BOOST_AUTO_TEST_CASE(response_scan_in_pieces)
{
    const std::string text = R"({"jsonrpc":"2.0","id":12,"result":{"content":[{"type":"text","text":"a\"b\\"}]},"x":-0.5E-7})";
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        response_scan scan;
        scan.feed(std::string_view(text).substr(0, cut));
        BOOST_TEST(scan.response() == (cut == text.size()));
        scan.feed(std::string_view(text).substr(cut));
        BOOST_TEST(scan.response());
    }
    response_scan scan;
    scan.feed(R"({"id":1,"result":1})");
    scan.reset();
    BOOST_TEST(!scan.response());
}

// A message naming a method is a request or notification, whatever else
// it holds; only the top-level object's own member says so.
BOOST_AUTO_TEST_CASE(response_scan_knows_a_message_that_names_a_method)
{
    const auto scanned = [](std::string_view text) {
        response_scan scan;
        scan.feed(text);
        return scan;
    };
    BOOST_TEST(scanned(R"({"jsonrpc":"2.0","method":"notifications/progress","params":{}})").names_a_method());
    BOOST_TEST(scanned(R"({"id":1,"error":{"code":1},"method":"x"})").names_a_method());
    BOOST_TEST(scanned(R"({"jsonrpc":"2.0","meth)").names_a_method() == false);  // not yet
    BOOST_TEST(!scanned(R"({"id":1,"result":{"method":"x"}})").names_a_method());
    BOOST_TEST(!scanned(R"({"id":1,"result":{},"x":{"method":1}})").names_a_method());
    BOOST_TEST(!scanned(R"([{"jsonrpc":"2.0","method":"x"}])").names_a_method());  // a batch: each message counts
    BOOST_TEST(!scanned(R"({"id":1,"result":1})").names_a_method());
}

// The relay does not hand the watch the data of an event whose message
// names a method (nothing in it counts), and counts what the watch alone
// counts: the notification's own "error" member is not an answer's.
BOOST_AUTO_TEST_CASE(the_relay_skips_the_watch_for_requests_and_notifications)
{
    const std::string stream =
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"error\":{\"code\":-32601}}\n\n"
        "data: {\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32602},\n"
        "data: \"method\":\"x\"}\n\n"
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603}}\n\n";
    answer_watch itself(answer_watch::form::event_stream, false);
    itself.feed(stream, true);
    for (std::size_t step = 1; step <= stream.size(); ++step) {
        const watched_relay_run run = relay_watched(stream, step, false);
        BOOST_TEST(run.counts[static_cast<std::size_t>(error_class::internal_error)] == 1u, "step " << step);
        BOOST_TEST(run.counts[static_cast<std::size_t>(error_class::method_not_found)] == 0u, "step " << step);
        BOOST_TEST(run.counts[static_cast<std::size_t>(error_class::invalid_params)] == 0u, "step " << step);
        BOOST_TEST((run.counts == itself.counts()), "step " << step);
    }
}

BOOST_AUTO_TEST_CASE(finish_sends_the_held_line)
{
    sse_relay r(7, true, 1024);
    std::string out;
    relayed_batch events;
    r.feed("data: a\n\ndata: b", out, events);
    BOOST_TEST(out == "id: 7.0\ndata: \n\nid: 7.1\ndata: a\n\n");
    BOOST_TEST(r.held() == 7u);
    r.finish(out);
    BOOST_TEST(out == "id: 7.0\ndata: \n\nid: 7.1\ndata: a\n\ndata: b");
    BOOST_TEST(events.size() == 1u);
    BOOST_TEST(r.held() == 0u);
    // An event without its blank line is not recorded.
    const relay_run open = relay_whole("data: x\ndata: y");
    BOOST_TEST(open.out == "id: 7.1\ndata: x\ndata: y");
    BOOST_TEST(open.events.empty());
    BOOST_TEST(open.next_index == 2u);
}

// The relay hands each event's data to the answer watch as it reads it
// (so a recorded POST stream is parsed once): the counts are those the
// watch finds reading the same bytes itself, however the input is split,
// oversized events and an unterminated last event included.
BOOST_AUTO_TEST_CASE(the_relay_feeds_the_answer_watch_as_the_watch_reads_itself)
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
        "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"" + std::string(3000, 'x') +
        "\"}}\n\n"  // over the relay's 1024: passed on, not recorded, still counted
        "retry: 1000\r"
        "data\r"
        "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"isError\":true}}\r"
        "\r"
        "data: {\"error\":{\"code\":-32700}}";  // unterminated at the end: still counted
    answer_watch itself(answer_watch::form::event_stream, true);
    itself.feed(stream, true);
    std::uint32_t expected_total = 0;
    for (const auto n : itself.counts()) {
        expected_total += n;
    }
    BOOST_TEST(expected_total == 4u);
    for (std::size_t step = 1; step <= stream.size(); step += step < 40 ? 1 : 97) {
        const watched_relay_run run = relay_watched(stream, step, true);
        BOOST_TEST(run.oversized == 1u, "step " << step);
        BOOST_TEST((run.counts == itself.counts()), "step " << step);
    }
}

BOOST_AUTO_TEST_CASE(stream_positions)
{
    const auto at = [](std::string_view raw) { return parse_stream_position(raw); };
    const auto is = [&](std::string_view raw, std::uint64_t stream, std::uint64_t index) {
        const auto p = at(raw);
        return p && p->stream == stream && p->index == index;
    };
    BOOST_TEST(is("", 0, 0));
    BOOST_TEST(is("   ", 0, 0));
    BOOST_TEST(is(" \t ", 0, 0));
    BOOST_TEST(is("0", 0, 0));
    BOOST_TEST(is("42", 0, 42));
    BOOST_TEST(is("\t42 ", 0, 42));
    BOOST_TEST(is("1.0", 1, 0));
    BOOST_TEST(is("3.17", 3, 17));
    BOOST_TEST(is("\t3.17\t", 3, 17));
    BOOST_TEST(is("18446744073709551615", 0, 18446744073709551615ull));
    BOOST_TEST(is("18446744073709551615.18446744073709551615", 18446744073709551615ull, 18446744073709551615ull));
    BOOST_TEST(!at("18446744073709551616"));
    BOOST_TEST(!at("18446744073709551616.1"));
    BOOST_TEST(!at("1.18446744073709551616"));
    BOOST_TEST(!at("0.5"));  // P is at least 1
    BOOST_TEST(!at("0.0"));
    BOOST_TEST(!at("+1"));
    BOOST_TEST(!at("-1"));
    BOOST_TEST(!at("1."));
    BOOST_TEST(!at(".1"));
    BOOST_TEST(!at("."));
    BOOST_TEST(!at("1.2.3"));
    BOOST_TEST(!at("1 .2"));
    BOOST_TEST(!at("1. 2"));
    BOOST_TEST(!at("1 2"));
    BOOST_TEST(!at("1.+2"));
    BOOST_TEST(!at("a"));
    BOOST_TEST(!at("1\n"));
    BOOST_TEST(!at("\v1"));
    std::string id;
    append_post_event_id(id, 3, 17);
    BOOST_TEST(id == "3.17");
    const std::string round = [] {
        std::string s;
        append_post_event_id(s, std::numeric_limits<std::uint64_t>::max(), 0);
        return s;
    }();
    BOOST_TEST(is(round, std::numeric_limits<std::uint64_t>::max(), 0));
}

BOOST_AUTO_TEST_CASE(lagged_notice_forms)
{
    std::string out;
    append_post_stream_lagged(out, true, false, 3, 9, 4);
    BOOST_TEST(out == "id: 3.9\nevent: lagged\ndata: {\"dropped\":4}\n\n");
    out.clear();
    append_post_stream_lagged(out, true, true, 3, 9, 4);
    BOOST_TEST(out == "id: 3.9\nevent: lagged\ndata: {\"dropped\":4}\n\n");
    out.clear();
    append_post_stream_lagged(out, false, true, 3, 9, 4);
    BOOST_TEST(out == ": lagged {\"dropped\":4}\n\nid: 3.9\ndata: \n\n");
    out.clear();
    append_post_stream_lagged(out, false, false, 3, 9, 4);
    BOOST_TEST(out == ": lagged {\"dropped\":4}\n\n");
}

// The batch a feed() fills is cleared between calls but keeps its events'
// strings, within kept_events and kept_bytes: a stream under way records
// without allocating, and a burst is not held for the stream's life.
BOOST_AUTO_TEST_CASE(batch_reuses_its_strings_within_bounds)
{
    const std::string kilobyte(1024, 'x');
    sse_relay relay(7, false, 4096);
    relayed_batch events;
    std::string out;
    relay.feed("data: " + kilobyte + "\n\ndata: b\n\n", out, events);
    BOOST_REQUIRE(events.size() == 2u);
    const char* first_buffer = events[0].fields.data();
    events.clear();
    BOOST_TEST(events.empty());
    relay.feed("data: c\n\n", out, events);
    BOOST_REQUIRE(events.size() == 1u);
    BOOST_TEST(events[0].index == 3u);
    BOOST_TEST(events[0].fields == "data: c\n");  // nothing of the earlier event left
    BOOST_TEST(!events[0].response);
    BOOST_TEST(events[0].fields.data() == first_buffer);  // the same string, no new allocation
    BOOST_TEST(events[0].fields.capacity() >= kilobyte.size());
    BOOST_CHECK_THROW((void)events.at(1), std::out_of_range);  // held, but not part of this batch

    // 40 events of 3 KB: after clear() at most kept_bytes of them stay.
    events.clear();
    const std::string three_kb(3000, 'y');
    std::string burst;
    for (int i = 0; i < 40; ++i) {
        burst += "data: " + three_kb + "\n\n";
    }
    relay.feed(burst, out, events);
    BOOST_REQUIRE(events.size() == 40u);
    events.clear();
    for (int i = 0; i < 40; ++i) {
        relay.feed("data: z\n\n", out, events);
    }
    BOOST_REQUIRE(events.size() == 40u);
    std::size_t kept = 0;
    for (const relayed_event& e : events) {
        kept += e.fields.capacity() >= three_kb.size() ? e.fields.capacity() : 0;
        BOOST_TEST(e.fields == "data: z\n");
    }
    BOOST_TEST(kept > 0u);
    BOOST_TEST(kept <= relayed_batch::kept_bytes);
}

BOOST_AUTO_TEST_SUITE_END()
