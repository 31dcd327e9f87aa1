# Two zones number their streams' tokens independently (both from 1): a
# worker serving one stream of each with the same token must deliver each
# zone's events to its own stream, promptly, and a stream ending in one
# zone must not unregister the other zone's (issue 11 item 4).
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http;
use JSON::PP qw(decode_json);
use Test::More;

my $n = start_nginx(
    workers     => 2,
    http_config => "mcp_session_zone zone=a:1m;\nmcp_session_zone zone=b:1m;",
    config      => <<'CONF');
location /a { mcp_session zone=a; mcp_session_stream on; mcp_session_heartbeat off; add_header X-Pid $pid always;
              proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location /b { mcp_session zone=b; mcp_session_stream on; mcp_session_heartbeat off; add_header X-Pid $pid always;
              proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /publish-a { mcp_session_publish zone=a; }
location = /publish-b { mcp_session_publish zone=b; }
location = /status-b { mcp_session_status zone=b; }
CONF

sub stream {
    my ($zone, $sid) = @_;
    my $s = open_stream($n, 'GET', "/$zone", headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream']);
    my ($pid) = $s->read_until(qr/event: init\n.*\n\n/, 5) =~ /\r\nX-Pid: (\d+)\r\n/i;
    return ($s, $pid // 0);
}

sub publish {
    my ($zone, $sid, $n_) = @_;
    return $n->request('POST', "/publish-$zone", headers => ['Mcp-Session-Id' => $sid],
        body => qq({"jsonrpc":"2.0","method":"notifications/message","params":{"zone":"$zone","n":$n_}}));
}

# Round i subscribes once in each zone, so both streams hold token i; the
# pair is kept when one worker serves both.
my ($sa, $sb, $round);
for my $i (1 .. 40) {
    is($n->request('POST', "/$_?sid=$_-$i", body => '{}')->{status}, 200, "session $_-$i") for qw(a b);
    my ($a_stream, $a_pid) = stream('a', "a-$i");
    my ($b_stream, $b_pid) = stream('b', "b-$i");
    if ($a_pid && $a_pid == $b_pid) { ($sa, $sb, $round) = ($a_stream, $b_stream, $i); last }
    $_->close for $a_stream, $b_stream;
}
ok($sa, 'one worker serves a stream of each zone with the same token') or BAIL_OUT('no pair');

is(publish('a', "a-$round", 1)->{status}, 202, 'publish to zone a');
ok($sa->read_until(qr/"n":1,"zone":"a"/, 3) =~ /"n":1,"zone":"a"/, "zone a's stream gets its event at once") or diag($sa->data);
is(publish('b', "b-$round", 1)->{status}, 202, 'publish to zone b');
ok($sb->read_until(qr/"n":1,"zone":"b"/, 3) =~ /"n":1,"zone":"b"/, "zone b's stream gets its event at once");
unlike($sb->data, qr/"zone":"a"/, "zone b's stream got nothing of zone a");
unlike($sa->data, qr/"zone":"b"/, "zone a's stream got nothing of zone b");

# Zone b's stream ends (its client leaves); zone a's stream stays registered.
$sb->close;
ok(poll_until(5, sub { decode_json($n->request('GET', '/status-b')->{body})->{open_streams} == 0 }),
    "zone b's stream has ended");
is(publish('a', "a-$round", 2)->{status}, 202, 'publish to zone a again');
ok($sa->read_until(qr/"n":2,"zone":"a"/, 3) =~ /"n":2,"zone":"a"/,
    "zone a's stream still gets its events after zone b's stream with the same token ended");
$sa->close;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal|AddressSanitizer/, 'no worker trouble');
$n->stop;
done_testing();
