# The status endpoint counts what both workers did, in JSON and in the
# Prometheus format; counters survive reload; ring memory returns to the
# zone when its session ends.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    add_header X-Pid $pid always;
    add_header X-Age $mcp_session_age always;
    add_header X-Idle $mcp_session_idle always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
location = /publish { mcp_session_publish zone=mcp; }
location = /status { mcp_session_status zone=mcp; }
CONF

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

sub status_of {
    my ($n) = @_;
    my $res = $n->request('GET', '/status');
    die "status: $res->{status}" unless $res->{status} == 200;
    return decode_json($res->{body});
}

sub use_session { my ($n, $sid) = @_; return $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{}') }

my $n = start_nginx(workers => 2, log_level => 'info', http_config => 'mcp_session_zone zone=mcp:1m;', config => $locations);

my $empty = status_of($n);
is($empty->{zone}, 'mcp', 'zone name');
is($empty->{size}, 1048576, 'zone size');
is($empty->{sessions}, 0, 'empty zone');
is($empty->{bytes_used} + $empty->{bytes_free}, $empty->{size}, 'used + free = size');

my %pids;
for my $i (1 .. 10) {
    my $res = $n->request('POST', "/mcp?sid=s$i", body => '{}');
    $pids{ h($res, 'X-Pid') }++;
    is(h($res, 'X-Age'), '0', "age of a new session is 0") if $i == 1;
}
# s1 last, so its idle time below is measured right after its last use.
for my $i (reverse 1 .. 10) {
    for (1 .. 5) { $pids{ h(use_session($n, "s$i"), 'X-Pid') }++ }
}
is(h(use_session($n, 's1'), 'X-Idle'), '0', 'idle of a session just used is 0');
use_session($n, "nobody-$_") for 1 .. 3;
$n->raw_request("POST /mcp HTTP/1.1\r\nHost: x\r\nMcp-Session-Id: \r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
is(scalar(keys %pids), 2, 'requests went through both workers');

my $before_ring = status_of($n);
$n->request('POST', '/publish', headers => ['Mcp-Session-Id' => 's1'], body => qq({"jsonrpc":"2.0","method":"notifications/message","params":{"n":$_}})) for 1 .. 4;
my $stream = open_stream($n, 'GET', '/mcp', headers => ['Mcp-Session-Id' => 's1', 'Accept' => 'text/event-stream']);
$stream->read_until(qr/id: 4\nevent: [^\n]*\ndata: [^\n]*\n\n/, 5);

my $s = status_of($n);
is($s->{sessions}, 10, 'sessions from both workers');
is($s->{sessions_with_ring}, 1, 'one session has a ring');
is($s->{open_streams}, 1, 'one open stream');
is($s->{counters}{created}, 10, 'created');
is($s->{counters}{validated}, 52, 'validated: 50 + 1 + the stream GET');
is($s->{counters}{rejected_unknown}, 4, 'rejected: 3 unknown + 1 empty');
is($s->{counters}{events_published}, 4, 'published: 4 (markers are not published into the ring)');
is($s->{counters}{events_replayed}, 4, 'replayed: the 4 buffered before the stream opened');
cmp_ok($s->{bytes_used}, '>', $before_ring->{bytes_used}, 'the ring takes zone memory');

my $prom = $n->request('GET', '/status?format=prometheus');
like(h($prom, 'Content-Type'), qr{^text/plain; version=0\.0\.4}, 'prometheus content type');
like($prom->{body}, qr/^# HELP mcp_session_zone_sessions Live sessions in the zone\.\n# TYPE mcp_session_zone_sessions gauge\nmcp_session_zone_sessions\{zone="mcp"\} 10$/m,
    'prometheus gauge with HELP, TYPE and zone label');
like($prom->{body}, qr/^mcp_session_created_total\{zone="mcp"\} 10$/m, 'prometheus counter');
my $by_accept = $n->request('GET', '/status', headers => ['Accept' => 'text/plain; version=0.0.4']);
like($by_accept->{body}, qr/^# TYPE mcp_session_validated_total counter$/m, 'prometheus by Accept header');

is($n->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => 's1'])->{status}, 200, 'delete the streaming session');
$stream->read_until(qr/\r\n0\r\n\r\n$/, 5);
my $after = status_of($n);
is($after->{sessions}, 9, 'one session fewer');
is($after->{sessions_with_ring}, 0, 'no ring left');
is($after->{open_streams}, 0, 'no open stream');
is($after->{counters}{deleted}, 1, 'deleted counted');
is($after->{bytes_used}, $before_ring->{bytes_used}, 'the ring and its events went back to the zone');

ok($n->reload(http_config => 'mcp_session_zone zone=mcp:1m;', config => $locations), 'reload');
my $reloaded = status_of($n);
is($reloaded->{counters}{created}, 10, 'counters survive reload');
is($reloaded->{sessions}, 9, 'sessions survive reload');
is($n->request('POST', '/status', body => '{}')->{status}, 405, 'status is read-only');
unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'clean error log');
$n->stop;
done_testing();
