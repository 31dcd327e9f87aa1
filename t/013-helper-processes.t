# nginx's helper processes (the cache manager and loader that
# proxy_cache_path starts) are children of the master like the workers,
# but serve no requests: they must not take a worker's doorbell or drain
# its inbox, or that worker's streams miss their wake-ups.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Time::HiRes qw(time);
use Test::More;

my $n = start_nginx(
    workers     => 2,
    log_level   => 'notice',
    http_config => 'mcp_session_zone zone=mcp:1m;
    proxy_cache_path $TEST_NGINX_SERVROOT/cache keys_zone=helpers:1m;',
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /publish { mcp_session_publish zone=mcp; }
CONF

my @workers = @{ $n->worker_pids };
is(scalar(@workers), 2, 'two workers');
# The master forks the cache helpers after the workers: wait for them.
ok(poll_until(5, sub { @{ $n->helper_pids } >= 1 }), 'and the cache helper processes are running beside them');

# One stream in each worker: open streams until both workers hold one.
my %stream_in;  # worker pid => [session id, stream]
for my $i (1 .. 200) {
    last if keys %stream_in == 2;
    my $sid = "helper-$i";
    $n->request('POST', "/mcp?sid=$sid", body => '{}');
    my $s = open_stream($n, 'GET', '/mcp', headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream']);
    my $head = $s->read_until(qr/event: init\n.*\n\n/s, 5);
    my ($pid) = $head =~ /^X-Pid: (\d+)\r?$/mi;
    if ($pid && !$stream_in{$pid}) { $stream_in{$pid} = [$sid, $s] } else { $s->close }
}
is(scalar(keys %stream_in), 2, 'a stream is open in each worker');

# Every publish must wake the worker holding the stream at once. The
# event id's line is awaited with a deadline; a stolen wake-up leaves it
# unread until the deadline passes.
my %late;
for my $round (1 .. 40) {
    for my $pid (sort keys %stream_in) {
        my ($sid, $s) = @{ $stream_in{$pid} };
        my $res = $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => $sid], body => qq({"jsonrpc":"2.0","method":"notifications/message","params":{"round":$round}}));
        my ($id) = $res->{body} =~ /"id":(\d+)/;
        next unless $id;
        $late{$pid}++ unless $s->read_until(qr/id: $id\nevent: message\ndata: [^\n]*\n\n/, 3) =~ /id: $id\n/;
    }
}
for my $pid (sort keys %stream_in) {
    is($late{$pid} // 0, 0, "worker $pid: all 40 events arrived, none waited for a later wake-up");
    $stream_in{$pid}[1]->close;
}

is_deeply($n->worker_pids, \@workers, 'no worker died');
unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'no alert, crit or crash');
$n->stop;
done_testing;
