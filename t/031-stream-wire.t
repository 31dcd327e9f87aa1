# The stream's wire bytes exactly, per negotiated revision (issue 12
# items 1, 2, 3 and 8's retry:), over HTTP/1.1 and HTTP/2, two workers:
# every message is `event: message`; markers are comments before
# 2025-11-25 and id-only (priming) events from it; markers take no ids
# and no ring slots; a GET without Last-Event-ID gets only what no stream
# delivered; retry: precedes nginx's close for 2025-11-25+; the seed's
# named events stay behind mcp_session_stream_events seed; an open
# stream keeps its session alive with heartbeats off.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http;
use McpSession::Http2;
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);

my $h2 = free_port();
my $files = tempdir(CLEANUP => 1);

sub http_config {
    my ($zone) = @_;
    $zone //= 'mcp_session_zone zone=mcp:1m;';
    return <<"CONF";
$zone
server {
    listen 127.0.0.1:$h2 http2;
    location /mcp {
        mcp_session zone=mcp;
        mcp_session_stream on;
        mcp_session_heartbeat off;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
}
CONF
}

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /beat {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat 100ms;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /seed {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_stream_events seed;
    mcp_session_heartbeat 100ms;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
location = /publish { mcp_session_publish zone=mcp; }
CONF

sub nginx_with {
    my (%args) = @_;
    return start_nginx(workers => 2, http_config => http_config($args{zone}), config => $locations);
}

sub create { my ($n, $sid) = @_; is($n->request('POST', "/mcp?sid=$sid", body => '{}')->{status}, 200, "session $sid") }

# Keys in order: the publish endpoint writes the JSON it parsed, keys sorted.
sub note_json { my ($tag) = @_; return qq({"jsonrpc":"2.0","method":"notifications/message","params":{"data":"$tag","level":"info"}}) }
sub progress_json { my ($p) = @_; return qq({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":$p,"progressToken":"t"}}) }

sub publish {
    my ($n, $sid, $body, $kind) = @_;
    my $res = $n->request('POST', defined $kind ? "/publish?event=$kind" : '/publish',
        headers => ['Mcp-Session-Id' => $sid], body => $body);
    return $res->{body} =~ /"id":(\d+)/ ? $1 : "status $res->{status}";
}

# An HTTP/1.1 GET stream; `version` sets MCP-Protocol-Version.
sub stream {
    my ($n, $sid, %opt) = @_;
    my @headers = ('Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream');
    push @headers, 'MCP-Protocol-Version' => $opt{version} if $opt{version};
    push @headers, 'Last-Event-ID' => $opt{last} if defined $opt{last};
    return open_stream($n, 'GET', $opt{path} // '/mcp', headers => \@headers);
}

# The SSE bytes of an HTTP/1.1 stream so far (chunked framing removed).
sub body_of {
    my ($s) = @_;
    my $split = index($s->data, "\r\n\r\n");
    return $split < 0 ? '' : McpSession::Http::decode_chunked(substr($s->data, $split + 4));
}
sub wait_body {
    my ($s, $re, $secs) = @_;
    my $deadline = time + ($secs // 5);
    while (body_of($s) !~ $re && !$s->closed && time < $deadline) { $s->read_until(qr/(?!)/, 0.2) }
    return body_of($s);
}
sub ended { my ($s) = @_; $s->read_until(qr/\r\n0\r\n\r\n$/, 5); return $s->data =~ /\r\n0\r\n\r\n$/ ? 1 : 0 }

# Matches once the message event with this id has fully arrived.
sub got_event { my ($id) = @_; return qr/id: $id\nevent: [^\n]*\ndata: [^\n]*\n\n/ }

sub message_event { my ($id, $json) = @_; return "id: $id\nevent: message\ndata: $json\n\n" }

# 1. Every message, progress included, goes out as `event: message`;
#    the connect marker per revision.
{
    my $n = nginx_with();
    create($n, 'p');
    is(publish($n, 'p', progress_json(1), 'progress'), 1, 'progress published before any stream: id 1');
    is(publish($n, 'p', note_json('a')), 2, 'message: id 2');
    my $s = stream($n, 'p');
    is(wait_body($s, got_event(2)), ": connected\n\n" . message_event(1, progress_json(1)) . message_event(2, note_json('a')),
        '2025-03-26 (no header): a comment, then both as event: message');
    $s->close;

    create($n, 'p11');
    publish($n, 'p11', progress_json(1), 'progress');
    my $p = stream($n, 'p11', version => '2025-11-25');
    is(wait_body($p, got_event(1)), "id: 0\ndata: \n\n" . message_event(1, progress_json(1)),
        '2025-11-25: a priming event (id 0, empty data), then progress as event: message');
    $p->close;

    create($n, 'p06');
    publish($n, 'p06', note_json('x'));
    my $o = stream($n, 'p06', version => '2025-06-18');
    is(wait_body($o, got_event(1)), ": connected\n\n" . message_event(1, note_json('x')),
        '2025-06-18: no empty-data event, a comment');
    $o->close;
    $n->stop;
}

# 2. Heartbeats per revision; they take no ids and no ring slots.
{
    my $n = nginx_with(zone => 'mcp_session_zone zone=mcp:1m buffer=2;');
    create($n, 'hb');
    my $s = stream($n, 'hb', path => '/beat');
    # A reader may already hold more beats than it waited for.
    like(wait_body($s, qr/(: heartbeat\n\n){3}/), qr/\A: connected\n\n(?:: heartbeat\n\n){3,}\z/,
        'before 2025-11-25: heartbeats are comments');
    is(publish($n, 'hb', note_json('after')), 1, 'heartbeats took no ids: the first message is id 1');
    like(wait_body($s, got_event(1)), qr/\Q@{[message_event(1, note_json('after'))]}\E/, '... and it arrives');
    $s->close;

    create($n, 'hb11');
    is(publish($n, 'hb11', note_json('m1')), 1, 'buffer=2: m1');
    is(publish($n, 'hb11', note_json('m2')), 2, 'buffer=2: m2');
    my $p = stream($n, 'hb11', path => '/beat', version => '2025-11-25');
    my $primed = "id: 0\ndata: \n\n" . message_event(1, note_json('m1')) . message_event(2, note_json('m2'));
    like(wait_body($p, qr/(id: 2\ndata: \n\n){3}/), qr/\A\Q$primed\E(?:id: 2\ndata: \n\n){3,}\z/,
        '2025-11-25: heartbeats are id-only events carrying the cursor');
    $p->close;
    my $again = stream($n, 'hb11', version => '2025-11-25', last => 1);
    is(wait_body($again, got_event(2)), "id: 1\ndata: \n\n" . message_event(2, note_json('m2')),
        'after heartbeats a 2-event ring still holds both messages: Last-Event-ID 1 replays m2, nothing lost');
    $again->close;
    $n->stop;
}

# 3. The lost-events notice: a comment with the count, plus the id where
#    the revision allows.
{
    my $n = nginx_with(zone => 'mcp_session_zone zone=mcp:1m buffer=4;');
    create($n, 'lag');
    publish($n, 'lag', note_json("n$_")) for 1 .. 10;  # ring keeps 7..10
    my $s = stream($n, 'lag', last => 2);
    is(wait_body($s, got_event(10)),
        ": connected\n\n: lagged {\"dropped\":4}\n\n" . join('', map { message_event($_, note_json("n$_")) } 7 .. 10),
        'before 2025-11-25: lagged is a comment');
    $s->close;
    my $p = stream($n, 'lag', last => 2, version => '2025-11-25');
    is(wait_body($p, got_event(10)),
        "id: 2\ndata: \n\n: lagged {\"dropped\":4}\n\nid: 6\ndata: \n\n"
            . join('', map { message_event($_, note_json("n$_")) } 7 .. 10),
        '2025-11-25: lagged comment, then an id-only event past the gap');
    $p->close;
    $n->stop;
}

# 4. The seed vocabulary behind mcp_session_stream_events seed.
{
    my $n = nginx_with();
    create($n, 'sd');
    publish($n, 'sd', progress_json(5), 'progress');
    my $s = stream($n, 'sd', path => '/seed');
    my $text = wait_body($s, qr/event: heartbeat\n[^\n]*\n\n/);
    like($text, qr/\Aid: 0\nevent: init\ndata: \{"session_id":"sd","connected_at":\d+\}\n\n/, 'seed: init first, with the cursor id');
    my $progress = "id: 1\nevent: progress\ndata: " . progress_json(5) . "\n\n";
    like($text, qr/\n\n\Q$progress\E/, 'seed: progress named progress');
    like($text, qr/\n\nid: 1\nevent: heartbeat\ndata: \{"ts":\d+\}\n\n/, 'seed: heartbeat named, with the cursor id');
    $s->close;
    $n->stop;
}

# 5. Delivery: a GET without Last-Event-ID (or 0) gets only what no stream
#    delivered; an explicit Last-Event-ID replays after it.
{
    my $n = nginx_with();
    create($n, 'dl');
    publish($n, 'dl', note_json('early'));
    my $first = stream($n, 'dl', version => '2025-11-25');
    is(wait_body($first, got_event(1)), "id: 0\ndata: \n\n" . message_event(1, note_json('early')),
        'first GET: the event published before any stream arrives');
    my $second = stream($n, 'dl', version => '2025-11-25');
    ok(ended($first), 'second GET takes over');
    is(wait_body($second, qr/id: 1\ndata: \n\n/), "id: 1\ndata: \n\n", 'second GET without Last-Event-ID: nothing already delivered');
    publish($n, 'dl', note_json('late'));
    is(wait_body($second, got_event(2)), "id: 1\ndata: \n\n" . message_event(2, note_json('late')),
        'second GET: the new message');
    my $zero = stream($n, 'dl', version => '2025-11-25', last => 0);
    ok(ended($second), 'third GET takes over');
    is(wait_body($zero, qr/id: 2\ndata: \n\n/), "id: 2\ndata: \n\n", 'Last-Event-ID 0: nothing already delivered either');
    my $explicit = stream($n, 'dl', version => '2025-11-25', last => 1);
    is(wait_body($explicit, got_event(2)), "id: 1\ndata: \n\n" . message_event(2, note_json('late')),
        'Last-Event-ID 1: replays after it, as before');
    $explicit->close;
    $n->stop;
}

# 6. retry: before nginx closes the stream (takeover, session end, reload)
#    for 2025-11-25+, not before.
{
    my $n = nginx_with();
    create($n, 'rt');
    my $old = stream($n, 'rt', version => '2025-11-25');
    wait_body($old, qr/id: 0\ndata: \n\n/);
    my $new = stream($n, 'rt', version => '2025-11-25');
    ok(ended($old), 'takeover: the old stream ended');
    is(body_of($old), "id: 0\ndata: \n\nretry: 1000\n\n", 'takeover: retry: before the end (2025-11-25)');
    is($n->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => 'rt'])->{status}, 200, 'session ended');
    ok(ended($new), 'session end: the stream ended');
    is(body_of($new), "id: 0\ndata: \n\nretry: 1000\n\n", 'session end: retry: before the end');

    create($n, 'rt03');
    my $o = stream($n, 'rt03', version => '2025-03-26');
    wait_body($o, qr/: connected\n\n/);
    my $o2 = stream($n, 'rt03', version => '2025-03-26');
    ok(ended($o), 'takeover (2025-03-26): ended');
    is(body_of($o), ": connected\n\n", 'takeover (2025-03-26): no retry:');
    $o2->close;

    create($n, 'rl');
    my $r = stream($n, 'rl', version => '2025-11-25');
    wait_body($r, qr/id: 0\ndata: \n\n/);
    ok($n->reload(http_config => http_config(), config => $locations), 'reload');
    ok(ended($r), 'reload: the old worker ended the stream');
    is(body_of($r), "id: 0\ndata: \n\nretry: 1000\n\n", 'reload: retry: before the end');
    $n->stop;
}

# 7. Heartbeats off: the open stream still refreshes the idle clock.
{
    my $n = nginx_with(zone => 'mcp_session_zone zone=mcp:1m idle_timeout=1s sweep_interval=1h;');
    create($n, 'quiet');
    my $s = stream($n, 'quiet');
    wait_body($s, qr/: connected\n\n/);
    $s->read_until(qr/\r\n0\r\n\r\n$/, 3.5);  # three idle timeouts with no byte on the stream
    unlike($s->data, qr/\r\n0\r\n\r\n$/, 'heartbeat off: the stream outlives three idle timeouts');
    is(publish($n, 'quiet', note_json('still')), 1, 'heartbeat off: the session is still there');
    like(wait_body($s, got_event(1)), qr/\Q@{[message_event(1, note_json('still'))]}\E/, '... and its stream gets the message');
    $s->close;
    $n->stop;
}

# 8. HTTP/2: the same bytes.
{
    my $n = nginx_with();
    my $seq = 0;
    my $h2_stream = sub {
        my ($sid, @headers) = @_;
        my $out = "$files/h2-" . ++$seq;
        my $pid = McpSession::Http2::h2_stream_to($h2, '/mcp', $out, "Mcp-Session-Id: $sid", 'Accept: text/event-stream', @headers);
        return { pid => $pid, out => $out };
    };
    my $text_of = sub {
        my ($s) = @_;
        open my $fh, '<', $s->{out} or return '';
        local $/;
        my $t = <$fh> // '';
        $t =~ s/\A.*?\r\n\r\n//s or return '';
        return $t;
    };
    my $curl_done = sub {
        my ($s) = @_;
        my $code;
        poll_until(10, sub { my $r = waitpid($s->{pid}, WNOHANG); $code = $? >> 8 if $r == $s->{pid}; defined $code });
        return $code;
    };
    create($n, 'h2');
    publish($n, 'h2', progress_json(2), 'progress');
    my $a = $h2_stream->('h2', 'MCP-Protocol-Version: 2025-11-25');
    ok(poll_until(10, sub { $text_of->($a) =~ got_event(1) }), 'h2: event arrives');
    is($text_of->($a), "id: 0\ndata: \n\n" . message_event(1, progress_json(2)), 'h2 2025-11-25: priming, then event: message');
    my $b = $h2_stream->('h2', 'MCP-Protocol-Version: 2025-11-25');
    is($curl_done->($a), 0, 'h2 takeover: the old stream ends cleanly');
    is($text_of->($a), "id: 0\ndata: \n\n" . message_event(1, progress_json(2)) . "retry: 1000\n\n", 'h2 takeover: retry: last');
    ok(poll_until(10, sub { $text_of->($b) =~ /id: 1\ndata: \n\n/ }), 'h2: the newer stream is primed');
    is($text_of->($b), "id: 1\ndata: \n\n", 'h2: the newer stream (no Last-Event-ID) gets nothing already delivered');
    kill 'TERM', $b->{pid};
    waitpid($b->{pid}, 0);

    create($n, 'h2old');
    publish($n, 'h2old', note_json('o'));
    my $c = $h2_stream->('h2old');
    ok(poll_until(10, sub { $text_of->($c) =~ got_event(1) }), 'h2 2025-03-26: event arrives');
    is($text_of->($c), ": connected\n\n" . message_event(1, note_json('o')), 'h2 2025-03-26: comment, then event: message');
    kill 'TERM', $c->{pid};
    waitpid($c->{pid}, 0);
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'clean error log');
    $n->stop;
}

# 9. nginx -t rejects an unknown vocabulary.
{
    my $n = McpSession::Nginx->new(
        servroot => McpSession::Nginx::repo_root() . '/t/servroot-031-stream-wire-t', port => server_port(),
        workers => 1, log_level => 'info', load_module => 1,
        http_config => 'mcp_session_zone zone=mcp:1m;',
        config => "location /mcp { mcp_session zone=mcp; mcp_session_stream on; mcp_session_stream_events loud; }");
    my ($code, $output) = $n->check_config;
    isnt($code, 0, 'nginx -t fails for mcp_session_stream_events loud');
    like($output, qr/\[emerg\].*invalid value "loud" in .*nginx\.conf:\d+/, '... in nginx wording');
}

done_testing();
