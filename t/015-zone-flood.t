# An unauthenticated client floods a small issue-mode zone: with bare
# initializes, and with initialize + a GET stream it leaves at once. A
# session in use (named by requests after its initialize) outlives the
# flood: sessions never used are evicted first, and a stream that carried
# only markers gives its ring back when it closes, so the flood costs one
# record per session. The status counters show what happened.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
my $request = '{"jsonrpc":"2.0","id":2,"method":"tools/list"}';

my $n = start_nginx(
    workers     => 2,
    log_level   => 'notice',
    http_config => 'mcp_session_zone zone=mcp:256k;',
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_stream on;
    mcp_session_stream_events seed;   # the suite reads init markers
    mcp_session_heartbeat off;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id backend-1; return 200 "ok\n"; }
location = /status { mcp_session_status zone=mcp; }
location = /publish { mcp_session_publish zone=mcp; }
CONF

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }
sub status { return decode_json($n->request('GET', '/status')->{body}) }

sub initialize {
    my $res = $n->request('POST', '/mcp', body => $initialize);
    die "initialize: $res->{status}" if $res->{status} != 200;
    return h($res, 'Mcp-Session-Id');
}

sub use_session {
    my ($sid) = @_;
    return $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => $request)->{status};
}

my $kept = initialize();
is(use_session($kept), 200, 'the kept session is in use');

# Bare initializes: more than the zone holds.
my %pids;
my ($first_flood, $flood) = (undef, 0);
my $flood_one = sub {
    my $res = $n->request('POST', '/mcp', body => $initialize);
    die "flood: $res->{status}" if $res->{status} != 200;
    $first_flood //= h($res, 'Mcp-Session-Id');
    $pids{ h($res, 'X-Pid') }++;
    $flood++;
};
# Until the zone is full, then as many again.
until ($flood % 100 == 0 && status()->{counters}{evicted} > 0) {
    $flood_one->();
    die 'the zone never filled' if $flood > 20000;
}
$flood_one->() for 1 .. $flood;
my $after = status();
is(scalar(keys %pids), 2, "initializes went to both workers ($flood of them)");
cmp_ok($after->{counters}{evicted}, '>', $after->{sessions}, 'the flood evicted more sessions than the zone holds');
is($after->{counters}{evicted_unused}, $after->{counters}{evicted}, 'every eviction took a session never used');
is($after->{counters}{evicted_established}, 0, 'no established session was evicted');
is(use_session($kept), 200, 'the session in use survived the initialize flood');
is(use_session($first_flood), 404, 'the oldest unused flood session was evicted');

# initialize + GET, leaving at once: each stream had a ring while open.
# More of them than the zone could hold with a ring each.
# A second session in use, so this part stands on its own.
my $kept2 = initialize();
is(use_session($kept2), 200, 'a second session is in use');
my $streams = 0;
for my $i (1 .. 400) {
    my $sid = initialize();
    my $s = open_stream($n, 'GET', '/mcp', headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream']);
    my $text = $s->read_until(qr/event: init\n.*\n\n/, 5);
    $s->close;
    $streams++ if $text =~ /event: init\n/;
    if ($i % 50 == 0) {
        # Named now and then, as a client in use does.
        is(use_session($kept2), 200, "the session in use is valid after $i initialize + GET");
    }
}
is($streams, 400, 'every stream opened and sent its init');
my $settled = poll_until(10, sub { my $s = status(); $s->{open_streams} == 0 && $s->{sessions_with_ring} == 0 ? $s : undef });
ok($settled, 'every stream closed and no ring is left');
$settled ||= status();
is($settled->{counters}{rings_freed}, $settled->{counters}{rings_allocated}, 'every ring allocated was given back');
cmp_ok($settled->{counters}{rings_allocated}, '>=', 400, 'one ring per stream');
cmp_ok(400 * 256 * 24, '>', $settled->{size}, 'kept, those rings would have taken more than the zone');
is(use_session($kept2), 200, 'the session in use survived the stream flood');
is(use_session($kept), 200, 'so did the first one, idle all along');

# Ids go on after a ring was given back, and the markers it held are not
# announced as lost.
sub events_of {
    my ($text) = @_;
    my @events;
    while ($text =~ /id: (\d+)\nevent: (\w+)\ndata: [^\n]*\n\n/g) { push @events, "$1 $2" }
    return join ',', @events;
}
sub stream_of {
    my ($sid, @extra) = @_;
    return open_stream($n, 'GET', '/mcp', headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream', @extra]);
}
my $sid = initialize();
my $s = stream_of($sid);
is(events_of($s->read_until(qr/event: init\n.*\n\n/, 5)), '0 init', 'ids: the first stream has init at cursor 0 (markers take no id)');
$s->close;
ok(poll_until(10, sub { status()->{sessions_with_ring} == 0 }), 'ids: its ring was given back');
$s = stream_of($sid, 'Last-Event-ID' => '0');
is(events_of($s->read_until(qr/event: init\n.*\n\n/, 5)), '0 init', 'ids: the next stream starts at 0 again, no lagged notice');
$s->close;

# A ring that holds a message stays when its stream closes.
$sid = initialize();
is($n->request('POST', '/publish', headers => ['Mcp-Session-Id' => $sid], body => '{"jsonrpc":"2.0","method":"m"}')->{status},
    202, 'kept ring: a message published');
$s = stream_of($sid);
$s->read_until(qr/event: init\n.*\n\n/, 5);
$s->close;
ok(poll_until(10, sub { status()->{open_streams} == 0 }), 'kept ring: the stream closed');
is(status()->{sessions_with_ring}, 1, 'kept ring: the ring with a message is kept');
$s = stream_of($sid, 'Last-Event-ID' => '0');
is(events_of($s->read_until(qr/event: init\n.*\n\n/, 5)), '1 init', 'kept ring: the next stream starts after the delivered message');
is($n->request('POST', '/publish', headers => ['Mcp-Session-Id' => $sid], body => '{"jsonrpc":"2.0","method":"m"}')->{body},
    '{"id":2}', 'kept ring: ids go on');
like($s->read_until(qr/id: 2\n/, 5), qr/id: 2\nevent: message\n/, 'kept ring: the new message arrives');
$s->close;

unlike($n->error_log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit|emerg)\]/, 'no crash or alert');
$n->stop;
done_testing();
