# The stream suite's core cases over HTTP/2 (h2c, prior knowledge, curl),
# two workers: GET stream, replay after Last-Event-ID, takeover, publish
# from the other worker, session end, and reload, where the old worker
# must end its HTTP/2 streams cleanly (END_STREAM) so clients reconnect to
# a new worker and replay (issue 11 item 6).
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http2;
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);

my $h2 = free_port();
my $files = tempdir(CLEANUP => 1);

my $http = <<"CONF";
mcp_session_zone zone=mcp:1m;
server {
    listen 127.0.0.1:$h2 http2;
    location /mcp {
        mcp_session zone=mcp;
        mcp_session_stream on;
        mcp_session_stream_events seed;  # named events; t/031 has the default forms over HTTP/2
        mcp_session_heartbeat off;
        add_header X-Pid \$pid always;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
}
CONF
my $locations = <<'CONF';
location /backend {
    default_type application/json;
    if ($arg_forget) { return 404 '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}'; }
    add_header Mcp-Session-Id $arg_sid;
    return 200 "ok\n";
}
location = /publish { mcp_session_publish zone=mcp; add_header X-Pid $pid always; }
location /mcp { mcp_session zone=mcp; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
CONF

my $n = start_nginx(workers => 2, log_level => 'info', http_config => $http, config => $locations);

# One HTTP/2 request, without a body (see McpSession::Http2): its status.
sub h2_status {
    my ($method, $path, @headers) = @_;
    return McpSession::Http2::h2_request($h2, $method, $path, undef, @headers)->{status};
}

# Publishes over HTTP/1.1 (either worker); returns the pid that took it.
sub publish {
    my ($sid, $tag) = @_;
    my $res = $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => $sid],
        body => qq({"jsonrpc":"2.0","method":"notifications/message","params":{"tag":"$tag"}}));
    is($res->{status}, 202, "publish $tag");
    return $res->{headers}{'x-pid'}[0] // 0;
}

my $seq = 0;
# An HTTP/2 stream read by curl into a file.
sub h2_stream {
    my ($sid, $last) = @_;
    my $out = "$files/stream-" . ++$seq;
    my @headers = ("Mcp-Session-Id: $sid", 'Accept: text/event-stream');
    push @headers, "Last-Event-ID: $last" if defined $last;
    my $pid = McpSession::Http2::h2_stream_to($h2, '/mcp', $out, @headers);
    return { pid => $pid, out => $out };
}
sub text_of { my ($s) = @_; open my $fh, '<', $s->{out} or return ''; local $/; my $t = <$fh>; return $t // '' }
sub wait_text { my ($s, $re) = @_; return poll_until(10, sub { text_of($s) =~ $re }) ? 1 : 0 }
# curl's exit code once it ends (undef if it did not end within 10 s).
sub ended {
    my ($s) = @_;
    my $code;
    poll_until(10, sub { my $r = waitpid($s->{pid}, WNOHANG); $code = $? >> 8 if $r == $s->{pid}; defined $code });
    return $code;
}
sub stream_pid { my ($s) = @_; return (text_of($s) =~ /^x-pid: (\d+)/mi)[0] // 0 }
sub ids_of { my ($s) = @_; return join ',', text_of($s) =~ /^id: (\d+)$/mg }

is($n->request('POST', '/mcp?sid=h2', body => '{}')->{status}, 200, 'session');
publish('h2', 'early');

# GET stream and replay.
my $first = h2_stream('h2', 0);
ok(wait_text($first, qr/event: init\n/), 'h2 GET stream: init arrives');
like(text_of($first), qr{^HTTP/2 200}, 'h2 GET stream: HTTP/2 200');
ok(poll_until(10, sub { text_of($first) =~ /"tag":"early"/ }), 'h2 replay: the early event arrives');
is(ids_of($first), '0,1', 'h2 replay: init with the cursor, then the event published before');
like(text_of($first), qr/"tag":"early"/, 'h2 replay: it is the early event');

# Publish from the other worker.
my $serving = stream_pid($first);
my $other = 0;
for my $i (1 .. 20) {
    my $pid = publish('h2', "live-$i");
    if ($pid && $pid != $serving) { $other = $i; last }
}
ok($other, 'a publish was taken by the worker not serving the stream');
ok(wait_text($first, qr/"tag":"live-$other"/), 'h2: the event published by the other worker arrives');

# Takeover: a newer GET ends the older stream cleanly.
my $newer = h2_stream('h2', 1);
ok(wait_text($newer, qr/event: init\n(?:.*\n)*.*"tag":"live-$other"|"tag":"live-$other"(?:.*\n)*event: init\n/),
    'h2 takeover: the newer stream replays after Last-Event-ID');
is(ended($first), 0, 'h2 takeover: the older stream ends cleanly (END_STREAM)');

# Session end: the backend's 404 ends the session; the stream ends cleanly.
is(h2_status('POST', '/mcp?forget=1', 'Mcp-Session-Id: h2'), 404, 'the backend forgets the session');
is(ended($newer), 0, 'h2 session end: the stream ends cleanly');

# Reload: the old worker ends its HTTP/2 stream cleanly; the client
# reconnects to a new worker and replays what it missed.
is($n->request('POST', '/mcp?sid=rl', body => '{}')->{status}, 200, 'reload: session');
my $before = h2_stream('rl', 0);
ok(wait_text($before, qr/event: init\n/), 'reload: h2 stream open');
my $old_pid = stream_pid($before);
kill 'HUP', $n->master_pid;
is(ended($before), 0, 'reload: the old worker ends the h2 stream cleanly (END_STREAM), at once');
ok(poll_until(10, sub { !grep { $_ == $old_pid } @{ $n->worker_pids } }), 'reload: the old worker exits');
publish('rl', 'missed');
my $after = h2_stream('rl', 0);
ok(wait_text($after, qr/event: init\n/), 'reload: the reconnected h2 stream is open');
like(text_of($after), qr/"tag":"missed"/, 'reload: it replays the event published in between');
isnt(stream_pid($after), $old_pid, 'reload: served by a new worker');
kill 'TERM', $after->{pid};
waitpid $after->{pid}, 0;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]|open socket|exited on signal|AddressSanitizer/, 'no alert, leaked socket or crash');
$n->stop;
done_testing();
