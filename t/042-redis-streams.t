# mcp_session_zone ... redis= with mcp_session_stream on: two nginx nodes
# (own prefixes and zones, 2 workers each) share each session's events
# through a private redis-server. Redis numbers every event, so an id
# means the same event on both nodes; a publish on one node reaches the
# stream on the other, in order and once; a stream dropped on one node
# resumes on the other with exactly what it missed; one stream per
# session across both (a GET on B ends A's); HTTP/2 as well as HTTP/1.1.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Nginx;
use McpSession::Redis;
use McpSession::Nodes qw(start_node);
use McpSession::Http2;
use McpSession::FakeMcp;
use JSON::PP qw(decode_json);
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Test::More;

my $root = McpSession::Nginx::repo_root();
my ($redis_port, $backend_port, $a_port, $b_port, $b_h2, $fake_port) = map { free_port() } 1 .. 6;
my $files = tempdir(CLEANUP => 1);
# A backend with a stream of its own per session (Perl, t/lib/McpSession/FakeMcp.pm).
my $fake = McpSession::FakeMcp->start(port => $fake_port, log => "$files/fake.log", get => 'stream');

# A tool call's answer as a stream: two progress notifications, then the result.
sub write_file { my ($name, $text) = @_; open my $fh, '>:raw', "$files/$name" or die $!; print {$fh} $text; close $fh }
sub progress_json { my ($p) = @_; return qq({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":$p,"progressToken":"t"}}) }
my $result_json = '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"done"}]}}';
write_file('call', "data: " . progress_json(1) . "\n\n" . "data: " . progress_json(2) . "\n\n" . "data: $result_json\n\n");

my $redis = McpSession::Redis->new(dir => "$root/t/servroot-042-redis", port => $redis_port)->start;

# The MCP server both nodes proxy to: a new id for an initialize, no
# stream of its own (405 to GET), "ok" to anything else.
my $backend = McpSession::Nginx->new(
    servroot => "$root/t/servroot-042-backend", port => $backend_port, load_module => 0, log_level => 'warn',
    # ?bid=X: the session the backend makes is "b-X" (the test knows it).
    http_config => 'map $arg_bid $made_id { "" "s-$request_id"; default "b-$arg_bid"; }',
    config   => <<'CONF');
location /files/ { alias FILES/; default_type text/event-stream; }
location / {
    if ($request_method = GET) { return 405; }
    if ($http_mcp_session_id = "") {
        add_header Mcp-Session-Id $made_id always;
        return 200 "init\n";
    }
    return 200 "ok\n";
}
CONF
$backend->{config} =~ s/FILES/$files/;
$backend->start;
$backend->{started_by_api} = 1;

sub node_config {
    return <<"CONF";
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    add_header X-Pid \$pid always;
    proxy_pass http://127.0.0.1:$backend_port;
}
location /call {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    proxy_method GET;
    proxy_pass http://127.0.0.1:$backend_port/files/call;
}
location = /publish { mcp_session_publish zone=mcp; add_header X-Pid \$pid always; }
location = /status { mcp_session_status zone=mcp; }
location /held {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_stream_grace 30s;
    mcp_session_heartbeat off;
    proxy_pass http://127.0.0.1:$fake_port;
}
location /issued {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    proxy_pass http://127.0.0.1:$backend_port;
}
location /short {
    mcp_session zone=short;
    mcp_session_stream on;
    mcp_session_heartbeat 500ms;
    proxy_pass http://127.0.0.1:$backend_port;
}
CONF
}

sub make_node {
    my ($name, $port, $extra_http) = @_;
    return start_node(servroot => "$root/t/servroot-042-$name", port => $port, config => node_config(),
        http_config => "mcp_session_zone zone=mcp:2m idle_timeout=10m redis=127.0.0.1:$redis_port;\n"
                     . "mcp_session_zone zone=short:1m idle_timeout=3s redis=127.0.0.1:$redis_port redis_prefix=short:;\n"
                     . ($extra_http // ''));
}

my $A = make_node('a', $a_port);
my $B = make_node('b', $b_port, "server {\n    listen 127.0.0.1:$b_h2 http2;\n" . node_config() . "}\n");

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';

sub h { my ($res, $name) = @_; return $res->{headers}{ lc $name }[0] // '' }
sub status_of { my ($node) = @_; return decode_json($node->request('GET', '/status')->{body}) }

sub create_on {
    my ($node) = @_;
    my $res = $node->request('POST', '/mcp', body => $initialize,
        headers => ['Content-Type' => 'application/json', Accept => 'application/json, text/event-stream']);
    return h($res, 'Mcp-Session-Id');
}

# Publishes one message naming $tag; returns the publish's answer.
sub publish {
    my ($node, $sid, $tag) = @_;
    return $node->request('POST', '/publish', headers => ['Mcp-Session-Id' => $sid],
        body => qq({"jsonrpc":"2.0","method":"notifications/message","params":{"tag":"$tag"}}));
}

# Publishes and says which id the cluster gave it (0: refused).
sub published_id {
    my ($node, $sid, $tag) = @_;
    my $res = publish($node, $sid, $tag);
    return $res->{status} == 202 ? decode_json($res->{body})->{id} : 0;
}

sub get_stream {
    my ($node, $sid, @headers) = @_;
    return open_stream($node, 'GET', '/mcp',
        headers => ['Mcp-Session-Id' => $sid, Accept => 'text/event-stream', @headers]);
}

# The (id, tag) pairs of the messages a stream's text holds, in order.
sub events_in {
    my ($text) = @_;
    my @pairs;
    while ($text =~ /^id: (\d+)\nevent: message\ndata: .*?"tag":"([^"]+)"/mg) { push @pairs, "$1:$2" }
    return join ',', @pairs;
}

sub connected { my ($s) = @_; return $s->read_until(qr/: connected\n\n/, 5) =~ /: connected\n\n/ }

for my $node ($A, $B) {
    ok(poll_until(10, sub { (status_of($node)->{redis}{link} // '') eq 'up' }), 'the link to Redis comes up');
}
$redis->command('DEL', $_) for 'mcp:reseeding', 'short:reseeding';  # a fresh Redis's re-seed window (see t/041)

# ---- publish on A reaches the stream on B, in order, once
my $sid = create_on($A);
like($sid, qr/^s-/, 'a session made on A');
my $on_b = get_stream($B, $sid);
ok(connected($on_b), 'its stream opens on B');
my @ids = map { published_id($A, $sid, "a$_") } 1 .. 5;
is("@ids", '1 2 3 4 5', 'Redis numbers the events published on A');
push @ids, map { published_id($B, $sid, "b$_") } 1 .. 2;
is("@ids[5, 6]", '6 7', 'and those published on B after them');
$on_b->read_until(qr/"tag":"b2"/, 5);
is(events_in($on_b->data), '1:a1,2:a2,3:a3,4:a4,5:a5,6:b1,7:b2', 'B\'s stream got every event once, in order');
my $entries = $redis->command('XRANGE', 'mcp:e:{0' . unpack('H*', $sid) . '}', '-', '+');
is(scalar @$entries, 7, 'the session\'s Redis Stream holds them');
is($entries->[0][0], '0-1', 'under the ids the clients see');

# ---- a stream dropped on B resumes on A with exactly what it missed
$on_b->close;
poll_until(5, sub { status_of($B)->{open_streams} == 0 && status_of($B)->{open_streams} == 0 });
my @missed = map { published_id($B, $sid, "m$_") } 1 .. 3;
is("@missed", '8 9 10', 'published while no stream was open');
my $on_a = get_stream($A, $sid, 'Last-Event-ID' => 7);
$on_a->read_until(qr/"tag":"m3"/, 5);
is(events_in($on_a->data), '8:m1,9:m2,10:m3', 'resumed on A after 7: exactly the three missed');
is(published_id($B, $sid, 'live'), 11, 'a publish on B ...');
$on_a->read_until(qr/"tag":"live"/, 5);
is(events_in($on_a->data), '8:m1,9:m2,10:m3,11:live', '... reaches the resumed stream on A live');

# ---- one stream per session across the nodes
my $takeovers = status_of($A)->{counters}{shared_takeovers};
my $again_b = get_stream($B, $sid, 'Last-Event-ID' => 11);
ok(connected($again_b), 'a GET on B for the same session');
$on_a->read_until(qr/\z(?!)/, 5);  # until A's stream ends
ok($on_a->closed, 'ends the stream on A');
is(poll_until(5, sub { status_of($A)->{counters}{shared_takeovers} > $takeovers }) ? 1 : 0, 1,
   'counted as a takeover from another node');
is(published_id($A, $sid, 'after'), 12, 'the next event ...');
$again_b->read_until(qr/"tag":"after"/, 5);
is(events_in($again_b->data), '12:after', '... goes to the new stream on B only');
unlike($on_a->data, qr/"tag":"after"/, 'never to the stream taken over');

# ---- a GET without Last-Event-ID on the other node starts after what was delivered
$again_b->close;
poll_until(5, sub { status_of($B)->{open_streams} == 0 && status_of($B)->{open_streams} == 0 });
is(published_id($B, $sid, 'new'), 13, 'an event no stream has sent');
my $fresh_a = get_stream($A, $sid);
$fresh_a->read_until(qr/"tag":"new"/, 5);
is(events_in($fresh_a->data), '13:new', 'a GET without Last-Event-ID on A gets it, and nothing B delivered');
$fresh_a->close;

# ---- HTTP/2: the stream on B's h2 listener, fed from A
my $seq = 0;
sub h2_stream {
    my ($sid, @headers) = @_;
    my $out = "$files/h2-" . ++$seq;
    my $pid = McpSession::Http2::h2_stream_to($b_h2, '/mcp', $out, "Mcp-Session-Id: $sid",
        'Accept: text/event-stream', @headers);
    return { pid => $pid, out => $out };
}
sub h2_text { my ($s) = @_; open my $fh, '<', $s->{out} or return ''; local $/; my $t = <$fh>; return $t // '' }
sub h2_stop { my ($s) = @_; kill 'TERM', $s->{pid}; waitpid($s->{pid}, 0) }

my $sid2 = create_on($A);
my $h2 = h2_stream($sid2);
ok(poll_until(5, sub { h2_text($h2) =~ /: connected/ }), 'an HTTP/2 stream opens on B');
my @h2ids = map { published_id($A, $sid2, "h$_") } 1 .. 3;
is("@h2ids", '1 2 3', 'three events published on A');
ok(poll_until(5, sub { h2_text($h2) =~ /"tag":"h3"/ }), 'reach it');
is(events_in(h2_text($h2)), '1:h1,2:h2,3:h3', 'in order, once');
h2_stop($h2);
is(published_id($A, $sid2, 'h4'), 4, 'one more while it is away');
my $h2b = h2_stream($sid2, 'Last-Event-ID: 3');
ok(poll_until(5, sub { h2_text($h2b) =~ /"tag":"h4"/ }), 'an HTTP/2 resume after 3 ...');
is(events_in(h2_text($h2b)), '4:h4', '... gets exactly the one missed');

# ---- the session's end on A ends its stream on B
my $del = $A->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $sid2]);
is($del->{status}, 200, 'DELETE on A');
my $code;
ok(poll_until(5, sub { my $r = waitpid($h2b->{pid}, WNOHANG); $code = $? >> 8 if $r == $h2b->{pid}; defined $code }),
   'ends the HTTP/2 stream on B');
is($code, 0, 'cleanly (END_STREAM)');
is(publish($B, $sid2, 'late')->{status}, 404, 'and a publish for it is 404 on either node');
ok(!$redis->command('EXISTS', 'mcp:e:{0' . unpack('H*', $sid2) . '}'), 'its Redis Stream is gone');
# Each of B's workers answers a publish after a round trip on its link,
# behind whatever its stream's end queued there.
poll_until(5, sub { status_of($B)->{open_streams} == 0 && status_of($B)->{open_streams} == 0 });
my %answered_by;
poll_until(5, sub { my $r = publish($B, $sid2, 'probe'); $answered_by{ h($r, 'X-Pid') } = 1; keys %answered_by >= 2 });
is(scalar keys %answered_by, 2, 'both of B\'s workers went to Redis since');
ok(!$redis->command('EXISTS', 'mcp:l:{0' . unpack('H*', $sid2) . '}'),
   'the stream ending after the session does not bring its listener key back');

# ---- a POST stream recorded on A resumes on B
my $sid4 = create_on($A);
my $answer = $A->request('POST', '/call', body => '{"jsonrpc":"2.0","id":7,"method":"tools/call"}',
    headers => ['Mcp-Session-Id' => $sid4, 'Content-Type' => 'application/json',
                Accept => 'application/json, text/event-stream']);
my @post_ids = $answer->{body} =~ /^id: (\d+\.\d+)$/mg;
is(scalar @post_ids, 3, 'A relays the tool call\'s stream with nginx\'s ids');
my ($p) = ($post_ids[0] // '') =~ /^(\d+)\./;
is("@post_ids", "$p.1 $p.2 $p.3", 'P.1, P.2, P.3');
my $resumed = $B->request('GET', '/mcp', timeout => 10,
    headers => ['Mcp-Session-Id' => $sid4, Accept => 'text/event-stream', 'Last-Event-ID' => "$p.1"]);
is($resumed->{status}, 200, 'GET + Last-Event-ID P.1 on B');
is(join(' ', $resumed->{body} =~ /^id: (\S+)$/mg), "$p.2 $p.3", 'replays exactly P.2 and P.3, recorded on A');
like($resumed->{body}, qr/^id: $p.3\ndata: \Q$result_json\E\n\n/m, 'byte for byte, the response last');
unlike($resumed->{body}, qr/"tag"/, 'never an event of another stream');
my $unknown = $B->request('GET', '/mcp', timeout => 10,
    headers => ['Mcp-Session-Id' => $sid4, Accept => 'text/event-stream', 'Last-Event-ID' => ($p + 1) . '.1']);
is($unknown->{status}, 200, 'a P no node recorded ...');
unlike($unknown->{body}, qr/^id:/m, '... ends with nothing to replay');
ok(status_of($A)->{counters}{post_streams_recorded} >= 1, 'A counted the recording');

# ---- an open stream on B keeps its session alive on A (idle_timeout 3s)
my $quiet = do {
    my $res = $A->request('POST', '/short', body => $initialize,
        headers => ['Content-Type' => 'application/json', Accept => 'application/json, text/event-stream']);
    h($res, 'Mcp-Session-Id');
};
my $held = open_stream($B, 'GET', '/short', headers => ['Mcp-Session-Id' => $quiet, Accept => 'text/event-stream']);
ok(connected($held), 'a stream on B of a session made on A, idle_timeout 3s');
my $beats = 0;
poll_until(8, sub { $held->read_until(qr/\z(?!)/, 0.5); $beats = () = $held->data =~ /: heartbeat/g; $beats >= 10 });
ok($beats >= 10, "it beats for more than the idle timeout ($beats heartbeats)");
my $still = $A->request('POST', '/short', body => '{"jsonrpc":"2.0","id":2,"method":"ping"}',
    headers => ['Mcp-Session-Id' => $quiet, 'Content-Type' => 'application/json',
                Accept => 'application/json, text/event-stream']);
is($still->{status}, 200, 'A still knows the session: B\'s stream was activity cluster-wide');
$held->close;

# ---- the backend's own stream follows the client's stream to the other node
sub fake_gets { my ($event) = @_; return scalar grep { $_->{event} eq $event } @{ $fake->gets } }
my $owned = do {
    my $res = $A->request('POST', '/held', body => $initialize,
        headers => ['Content-Type' => 'application/json', Accept => 'application/json, text/event-stream']);
    h($res, 'Mcp-Session-Id');
};
my $client_a = open_stream($A, 'GET', '/held', headers => ['Mcp-Session-Id' => $owned, Accept => 'text/event-stream']);
ok(connected($client_a), 'a client stream on A of a backend with a stream of its own');
ok(poll_until(5, sub { fake_gets('open') == 1 }), 'A holds the backend\'s stream');
$fake->notify($owned, 'first');
like($client_a->read_until(qr/"first"/, 5), qr/"data":"first"/, 'its message reaches the client on A');
my $client_b = open_stream($B, 'GET', '/held',
    headers => ['Mcp-Session-Id' => $owned, Accept => 'text/event-stream', 'Last-Event-ID' => 1]);
ok(connected($client_b), 'the client moves to B');
ok(poll_until(5, sub { fake_gets('closed') >= 1 }),
   'A lets the backend\'s stream go at once, not after its 30 s grace: the client is on B');
ok(poll_until(5, sub { fake_gets('open') == 2 }), 'B holds it now');
$fake->notify($owned, 'second');
$client_b->read_until(qr/"second"/, 5);
is(scalar(() = $client_b->data =~ /"data":"second"/g), 1, 'the next message reaches the client on B, once');
$client_a->close;
$client_b->close;

# ---- issue mode: a backend publishes by its own id through a node that never saw the session
my $issued = do {
    my $res = $A->request('POST', '/issued?bid=77', body => $initialize,
        headers => ['Content-Type' => 'application/json', Accept => 'application/json, text/event-stream']);
    h($res, 'Mcp-Session-Id');
};
isnt($issued, 'b-77', 'A issued its own id for the backend\'s b-77');
my $issued_stream = open_stream($A, 'GET', '/issued', headers => ['Mcp-Session-Id' => $issued, Accept => 'text/event-stream']);
ok(connected($issued_stream), 'its stream on A');
my $by_backend = publish($B, 'b-77', 'bid');
is($by_backend->{status}, 202, 'B takes a publish naming the backend\'s id');
$issued_stream->read_until(qr/"tag":"bid"/, 5);
is(events_in($issued_stream->data), decode_json($by_backend->{body})->{id} . ':bid', 'and it reaches the stream on A');
is(publish($B, 'b-78', 'none')->{status}, 404, 'a backend id no node made is 404');
$issued_stream->close;

# ---- reload of B: its stream ends cleanly, the client resumes on B's new workers
my $sid5 = create_on($A);
my $before_reload = get_stream($B, $sid5);
ok(connected($before_reload), 'a stream on B');
is(published_id($A, $sid5, 'r1'), 1, 'an event from A');
$before_reload->read_until(qr/"tag":"r1"/, 5);
ok($B->reload, 'B reloads');
$before_reload->read_until(qr/\z(?!)/, 5);
ok($before_reload->closed, 'the old worker ended the stream');
like($before_reload->data, qr/0\r\n\r\n\z/, 'cleanly (the final chunk)');
ok(poll_until(10, sub { (status_of($B)->{redis}{link} // '') eq 'up' && (status_of($B)->{redis}{link} // '') eq 'up' }),
   'B\'s new workers are on Redis');
is(published_id($A, $sid5, 'r2'), 2, 'an event while the client reconnects');
my $after_reload = get_stream($B, $sid5, 'Last-Event-ID' => 1);
$after_reload->read_until(qr/"tag":"r2"/, 5);
is(events_in($after_reload->data), '2:r2', 'the resume on B\'s new workers gets it');
is(published_id($A, $sid5, 'r3'), 3, 'and the next one ...');
$after_reload->read_until(qr/"tag":"r3"/, 5);
is(events_in($after_reload->data), '2:r2,3:r3', '... live');
$after_reload->close;

# ---- hostile values under the prefix are ignored with a log line
my $sid3 = create_on($A);
my $hostile = get_stream($B, $sid3);
ok(connected($hostile), 'a stream on B');
my $token = '0' . unpack('H*', $sid3);
$redis->command('PUBLISH', "mcp:ev:{$token}", "E1 9 0 0 0\n{}");
$redis->command('PUBLISH', "mcp:ev:{$token}", "L" . ('x' x 100));
$redis->command('XADD', "mcp:e:{$token}", '0-1', 'm', 'garbage');
is(published_id($A, $sid3, 'ok'), 2, 'a real event after a foreign entry');
$hostile->read_until(qr/"tag":"ok"/, 5);
is(events_in($hostile->data), '2:ok', 'still reaches the stream');
ok($B->error_log =~ /ignored a malformed (?:stream entry|listener message)/, 'the foreign values are logged');
unlike($B->error_log . $A->error_log, qr/\[alert\]|exited on signal/, 'no worker crashed');
$hostile->close;

# ---- Redis away: publishing is 503 (never numbered here alone); back empty, ids go on
$redis->kill_hard;
ok(poll_until(5, sub { (status_of($A)->{redis}{link} // '') eq 'down' && (status_of($A)->{redis}{link} // '') eq 'down' }),
   'A notices Redis is gone');
my $away = publish($A, $sid3, 'away');
is($away->{status}, 503, 'a publish while Redis is away is 503');
is(h($away, 'Retry-After'), '1', 'with Retry-After');
my $opened_away = get_stream($B, $sid3, 'Last-Event-ID' => 2);
ok(connected($opened_away), 'a stream opened on B while Redis is away (B holds the session)');
$redis->start;
ok(poll_until(15, sub { (status_of($A)->{redis}{link} // '') eq 'up' && (status_of($A)->{redis}{link} // '') eq 'up' }),
   'A is back on Redis');
ok(poll_until(15, sub { (status_of($B)->{redis}{link} // '') eq 'up' && (status_of($B)->{redis}{link} // '') eq 'up' }),
   'so is B');
my $after = published_id($A, $sid3, 'back');
ok($after > 2, "the first event after Redis came back empty is numbered past what clients hold ($after)");
$opened_away->read_until(qr/"tag":"back"/, 10);
is(events_in($opened_away->data), "$after:back", 'and reaches the stream B opened while Redis was away');

$A->stop;
$B->stop;
$backend->stop;
$fake->stop;
$redis->stop;
done_testing();
