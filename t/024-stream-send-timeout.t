# send_timeout on a stream is time without progress, as for any nginx
# response: a client reading slowly but steadily for longer than
# send_timeout in all keeps its stream; one that stops reading is cut
# after send_timeout with nginx's usual "client timed out" (issue 11 item 7).
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http;
use Socket qw(AF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF pack_sockaddr_in inet_aton);
use IO::Handle;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use Test::More;

my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, ReuseAddr => 1) or die "$!\n";
my $slow = $probe->sockport;
close $probe;

my $events = 64;
my $n = start_nginx(
    workers     => 2,
    log_level   => 'info',
    http_config => <<"CONF",
mcp_session_zone zone=mcp:8m;
server {
    # Small kernel buffers on both ends: the stream's output backs up in
    # nginx and each write event moves a few KB.
    listen 127.0.0.1:$slow sndbuf=4k;
    send_timeout 1s;
    location /mcp { mcp_session zone=mcp; mcp_session_stream on; mcp_session_heartbeat off;
                    proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend; }
    location = /publish { mcp_session_publish zone=mcp; mcp_session_event_max_size 16k; }
}
CONF
    config => <<'CONF');
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
CONF

sub on_slow {
    my ($method, $uri, %opt) = @_;
    return McpSession::Http::send_raw($slow, McpSession::Http::build_request($method, $uri, %opt));
}

# A stream socket with a 4 KB receive buffer.
sub slow_stream {
    my ($sid) = @_;
    socket(my $sock, AF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!\n";
    connect($sock, pack_sockaddr_in($slow, inet_aton('127.0.0.1'))) or die "connect: $!\n";
    binmode $sock;
    $sock->autoflush(1);
    print {$sock} McpSession::Http::build_request('GET', '/mcp',
        headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream', 'Last-Event-ID' => '0']);
    return $sock;
}

sub fill {
    my ($sid) = @_;
    is(on_slow('POST', "/mcp?sid=$sid", body => '{}')->{status}, 200, "$sid: session");
    my $ok = 0;
    for my $i (1 .. $events) {
        my $body = qq({"jsonrpc":"2.0","method":"notifications/message","params":{"i":$i,"pad":") . ('p' x 8000) . '"}}';
        $ok++ if on_slow('POST', '/publish', headers => ['Mcp-Session-Id' => $sid], body => $body)->{status} == 202;
    }
    is($ok, $events, "$sid: $events events of 8 KB published");
}

# Steady reader: 2 KB every 20 ms (about 100 KB/s, so the 512 KB replay
# takes about 5 s, five times send_timeout), never pausing for long.
fill('steady');
my $sock = slow_stream('steady');
my ($data, $closed, $started) = ('', 0, time);
my $sel = IO::Select->new($sock);
while (time - $started < 30 && $data !~ /"i":$events,/) {
    if ($sel->can_read(2)) {
        my $got = sysread($sock, my $chunk, 2048);
        if (!$got) { $closed = 1; last }
        $data .= $chunk;
    }
    select(undef, undef, undef, 0.02);
}
my $took = time - $started;
ok(!$closed, 'steady slow reader: the stream is not cut');
like($data, qr/"i":$events,/, 'steady slow reader: the whole replay arrives');
cmp_ok($took, '>', 2, "steady slow reader: it took longer than send_timeout in all (${\ sprintf '%.1f', $took} s)");
unlike($n->error_log, qr/client timed out/, 'steady slow reader: no timeout logged');
close $sock;

# A reader that stops: cut after send_timeout without progress, logged.
fill('stalled');
my $stalled = slow_stream('stalled');
ok($n->wait_for_log(qr/\[info\].*client timed out/, 10), 'stalled reader: "client timed out" is logged');
my $sel2 = IO::Select->new($stalled);
my $eof = 0;
my $until = time + 10;
while (time < $until) {
    last unless $sel2->can_read($until - time);
    my $got = sysread($stalled, my $chunk, 65536);
    if (!$got) { $eof = 1; last }
}
ok($eof, 'stalled reader: the stream was closed');
close $stalled;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal|AddressSanitizer/, 'no worker trouble');
$n->stop;
done_testing();
