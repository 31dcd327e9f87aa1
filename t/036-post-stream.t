# POST streams of unmodified backends (issue 13 items 1, 3, 6, 7): a
# backend's SSE answer to a session's POST goes to the client with
# nginx's ids (P.k, unique per stream), primed for 2025-11-25+, recorded
# in the session's ring; GET + Last-Event-ID P.k resumes it from either
# worker with exactly the events after k, never another stream's, live
# while the backend still talks, and ends once the response went out.
# Oversized events are passed on but reported lost on resume; malformed
# SSE passes unchanged from the first bad byte; `mcp_session_stream off`
# passes everything untouched. Two workers, HTTP/1.1 and HTTP/2.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http;
use McpSession::Http2;
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Socket;

my $files = tempdir(CLEANUP => 1);
my $h2 = free_port();
my $live_port = free_port();

sub write_file { my ($name, $text) = @_; open my $fh, '>:raw', "$files/$name" or die $!; print {$fh} $text; close $fh }

sub response_json { my ($id) = @_; return qq({"jsonrpc":"2.0","id":$id,"result":{"content":[{"type":"text","text":"done"}]}}) }
sub progress_json { my ($p) = @_; return qq({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":$p,"progressToken":"t"}}) }

# Exact streams, served as files (the front location asks for them with GET).
write_file('call', "id: backend-1\r\nevent: message\r\ndata: " . progress_json(1) . "\r\n\r\n"
    . ": a backend comment\r\n\r\n"
    . "data: " . progress_json(2) . "\r\nid: backend-2\r\n\r\n"
    . "data: " . response_json(7) . "\r\n\r\n");
write_file('noid', "data: " . progress_json(1) . "\n\n" . "data: " . response_json(6) . "\n\n");
write_file('primed', "id: own\ndata: \n\n" . "data: " . response_json(8) . "\n\n");
write_file('oversized', "data: " . progress_json(1) . "\n\n" . "data: " . ('x' x 2000) . "\n\n"
    . "data: " . response_json(9) . "\n\n");
write_file('malformed', "data: " . progress_json(1) . "\n\n" . "data: bad\x00byte\n\nid: kept\ndata: " . response_json(10) . "\n\n");

my $front = <<'CONF';
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    mcp_session_event_max_size 1k;
    add_header X-Worker $pid always;
CONF

my $http_config = <<"CONF";
mcp_session_zone zone=mcp:1m;
server {
    listen 127.0.0.1:$h2 http2;
    location /mcp/ {
$front
        proxy_method GET;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/files/;
    }
    location /live/ {
$front
        proxy_pass http://127.0.0.1:$live_port/;
    }
}
CONF

my $config = <<"CONF";
location /mcp/ {
$front
    proxy_method GET;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/files/;
}
location /live/ {
$front
    proxy_buffering on;
    proxy_pass http://127.0.0.1:$live_port/;
}
location /slow/ {
$front
    send_timeout 1s;
    proxy_pass http://127.0.0.1:$live_port/;
}
location /plain/ {
    mcp_session zone=mcp;
    mcp_session_stream off;
    proxy_method GET;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/files/;
}
location = /mcp/init { mcp_session zone=mcp; mcp_session_stream on; proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend; }
location /backend { add_header Mcp-Session-Id \$arg_sid; return 200 "{}\\n"; }
location /files/ { alias $files/; default_type text/event-stream; }
location = /files/encoded { alias $files/call; default_type text/event-stream; add_header Content-Encoding br; }
location = /publish { mcp_session_publish zone=mcp; }
location = /status { mcp_session_status zone=mcp; }
CONF

my $n = start_nginx(workers => 2, http_config => $http_config, config => $config);

sub create { my ($sid) = @_; is($n->request('POST', "/mcp/init?sid=$sid", body => '{}')->{status}, 200, "session $sid") }

sub post {
    my ($sid, $path, %opt) = @_;
    my @headers = ('Mcp-Session-Id' => $sid, 'Accept' => 'application/json, text/event-stream',
                   'Content-Type' => 'application/json');
    push @headers, 'MCP-Protocol-Version' => $opt{version} if $opt{version};
    return $n->request('POST', $path, headers => \@headers, body => '{"jsonrpc":"2.0","id":7,"method":"tools/call"}');
}

sub body_of { my ($res) = @_; return $res->{body} }

# The GET that resumes from `last`; returns the whole response (it ends by itself).
sub resume {
    my ($sid, $last, %opt) = @_;
    my @headers = ('Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream', 'Last-Event-ID' => $last);
    push @headers, 'MCP-Protocol-Version' => $opt{version} if $opt{version};
    return $n->request('GET', $opt{path} // '/mcp/x', headers => \@headers, timeout => $opt{timeout} // 10);
}

sub counter {
    my ($name) = @_;
    my $body = $n->request('GET', '/status')->{body};
    return $body =~ /"$name":(\d+)/ ? $1 : -1;
}

sub event_ids { my ($text) = @_; return [ $text =~ /^id: (\S*)$/mg ] }

# 1. Ids rewritten: P.1, P.2, P.3 in order; the backend's ids gone, its
#    comment kept, CRLF turned to LF; a second POST is another P.
my ($p1, $p2);
{
    create('a');
    my $res = post('a', '/mcp/call');
    is($res->{status}, 200, 'POST answered with the backend stream');
    is($res->{headers}{'content-type'}[0], 'text/event-stream', '... as text/event-stream');
    my $body = body_of($res);
    ($p1) = $body =~ /^id: (\d+)\.1$/m;
    ok($p1, "first event has id P.1 (P = $p1)");
    is($body, "id: $p1.1\nevent: message\ndata: " . progress_json(1) . "\n\n"
        . ": a backend comment\n\n"
        . "id: $p1.2\ndata: " . progress_json(2) . "\n\n"
        . "id: $p1.3\ndata: " . response_json(7) . "\n\n",
        'the relayed stream: nginx ids first, backend ids dropped, comment kept, LF line ends');
    ($p2) = body_of(post('a', '/mcp/call')) =~ /^id: (\d+)\.1$/m;
    ok($p2 && $p2 > $p1, "a second POST is another stream ($p2 > $p1)");
    my @all = (@{ event_ids($body) }, @{ event_ids(body_of(post('a', '/mcp/call'))) });
    my %seen;
    is(scalar(grep { !$seen{$_}++ } @all), scalar(@all), 'ids are unique across the streams');
    is(counter('post_streams_recorded'), 3, 'three POST streams recorded');
    is(counter('post_events_recorded'), 9, 'their nine events recorded');
}

# 2. Priming per revision: 2025-11-25 starts with id P.0 and empty data;
#    older revisions get none; a backend that primes itself is not primed twice.
{
    create('prime');
    my $modern = body_of(post('prime', '/mcp/noid', version => '2025-11-25'));
    my ($p) = $modern =~ /^id: (\d+)\.0$/m;
    ok($p, '2025-11-25: a priming event');
    is($modern, "id: $p.0\ndata: \n\nid: $p.1\ndata: " . progress_json(1) . "\n\nid: $p.2\ndata: " . response_json(6) . "\n\n",
        '... first, with empty data, then P.1 and P.2');
    unlike(body_of(post('prime', '/mcp/noid', version => '2025-06-18')), qr/^id: \d+\.0$/m, '2025-06-18: no priming');
    unlike(body_of(post('prime', '/mcp/noid')), qr/^id: \d+\.0$/m, 'no version header (2025-03-26): no priming');
    unlike(body_of(post('prime', '/mcp/call', version => '2025-11-25')), qr/^id: \d+\.0$/m,
        'a backend whose first line is its own id: no priming of nginx\'s');
    my $own = body_of(post('prime', '/mcp/primed', version => '2025-11-25'));
    my ($q) = $own =~ /^id: (\d+)\.1$/m;
    is($own, "id: $q.1\ndata: \n\nid: $q.2\ndata: " . response_json(8) . "\n\n",
        'a backend that primes itself: its priming event becomes P.1, no second one');
}

# 3. Resume from either worker: exactly the events after k, byte for byte
#    as live, then a clean end (the response went out).
{
    my $live = body_of(post('a', '/mcp/call'));
    my ($p) = $live =~ /^id: (\d+)\.1$/m;
    $live =~ s/^: a backend comment\n\n//m;  # a comment between events is no event: not replayed
    my %workers;
    for my $try (1 .. 20) {
        my $res = resume('a', "$p.1");
        is($res->{status}, 200, "resume $try: 200") if $try == 1;
        $workers{ $res->{headers}{'x-worker'} // '' }++;
        my $after = substr($live, index($live, "id: $p.2\n"));
        is($res->{body}, ": connected\n\n$after", "resume $try from $p.1: events 2 and 3 as live, then the end")
            if $try <= 2 || keys(%workers) == 2;
        last if keys(%workers) == 2;
    }
    is(scalar(keys %workers), 2, 'resumed on both workers');
    is(resume('a', "$p.3")->{body}, ": connected\n\n", 'resume after the response: nothing more, it ends');
    is(resume('a', "$p.0", version => '2025-11-25')->{body}, ": connected\n\n" . $live . "retry: 1000\n\n",
        'resume from the priming id: the whole stream, retry: before nginx closes (2025-11-25)');
}

# 4. Never another stream's events, and the standalone stream never gets
#    POST streams' events.
{
    create('mix');
    my $first = body_of(post('mix', '/mcp/call'));
    my ($p) = $first =~ /^id: (\d+)\.1$/m;
    $first =~ s/^: a backend comment\n\n//m;
    my $pub = $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => 'mix'],
        body => '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"own"}}');
    my ($standalone) = $pub->{body} =~ /"id":(\d+)/;
    my $second = body_of(post('mix', '/mcp/call'));
    my ($q) = $second =~ /^id: (\d+)\.1$/m;
    my $res = resume('mix', "$p.0");
    is($res->{body}, ": connected\n\n$first", "resume of $p: only its own events");
    unlike($res->{body}, qr/id: $q\.|own/, '... none of the later stream or the published message');
    my $s = open_stream($n, 'GET', '/mcp/x', headers => ['Mcp-Session-Id' => 'mix', 'Accept' => 'text/event-stream',
        'Last-Event-ID' => '0']);
    $s->read_until(qr/"own"\}\}\n\n/, 5);
    my ($head, $events) = split /\r\n\r\n/, $s->data, 2;
    $events = McpSession::Http::decode_chunked($events // '');
    like($events, qr/^id: $standalone\nevent: message\ndata: .*"own"/m, 'the standalone stream gets the published message');
    unlike($events, qr/progress|result/, '... and no POST stream event');
    $s->close;
}

# 5. Bad ids keep their 400; an id of a standalone event is no POST stream.
{
    create('bad');
    my $pub = $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => 'bad'],
        body => '{"jsonrpc":"2.0","method":"notifications/message","params":{}}');
    my ($standalone) = $pub->{body} =~ /"id":(\d+)/;
    for my $id ("$standalone.1", '999999.1', '0.1', '1.x', '1.', '.1', '1.2.3') {
        my $res = resume('bad', $id);
        is($res->{status}, 400, "Last-Event-ID $id: 400");
        like($res->{body}, qr/Last-Event-ID/, '... saying why');
    }
}

# 6. An event over mcp_session_event_max_size reaches the live client but
#    not the ring: a resume gets the lost-events notice for it.
{
    create('big');
    my $before = counter('post_events_unrecorded');
    my $live = body_of(post('big', '/mcp/oversized', version => '2025-11-25'));
    my ($p) = $live =~ /^id: (\d+)\.0$/m;
    like($live, qr/^id: $p\.2\ndata: x{2000}\n\n/m, 'the 2 KB event went to the live client');
    is(counter('post_events_unrecorded'), $before + 1, '... and was counted as not recorded');
    is(resume('big', "$p.1", version => '2025-11-25')->{body},
        ": connected\n\n: lagged {\"dropped\":1}\n\nid: $p.2\ndata: \n\nid: $p.3\ndata: " . response_json(9)
        . "\n\nretry: 1000\n\n", 'resume: the notice for the lost event (its id moves the cursor), then the response');
}

# 7. Malformed SSE (a NUL byte): everything from that byte passes
#    unchanged; only the events before it are recorded.
{
    create('nul');
    my $live = body_of(post('nul', '/mcp/malformed'));
    my ($p) = $live =~ /^id: (\d+)\.1$/m;
    my $raw = do { open my $fh, '<:raw', "$files/malformed" or die $!; local $/; <$fh> };
    my $tail = substr($raw, index($raw, "data: bad"));
    is($live, "id: $p.1\ndata: " . progress_json(1) . "\n\n" . $tail,
        'from the line with the NUL byte on, the bytes are the backend\'s, its own ids included');
    is(resume('nul', "$p.0")->{body}, ": connected\n\nid: $p.1\ndata: " . progress_json(1) . "\n\n",
        'resume: the event before the bad byte, then the end');
}

# 8. mcp_session_stream off: the backend's bytes, untouched.
{
    my $raw = do { open my $fh, '<:raw', "$files/call" or die $!; local $/; <$fh> };
    is(body_of(post('a', '/plain/call')), $raw, 'stream off: the answer passes byte for byte');
}

# 8b. A compressed answer is no SSE text to rewrite: it passes untouched.
{
    my $raw = do { open my $fh, '<:raw', "$files/call" or die $!; local $/; <$fh> };
    my $before = counter('post_streams_recorded');
    is(body_of(post('a', '/mcp/encoded')), $raw, 'Content-Encoding: the answer passes byte for byte');
    is(counter('post_streams_recorded'), $before, '... and is not recorded');
}

# 9. HTTP/2: the relayed stream and a resume.
{
    create('h2');
    my @headers = ('Mcp-Session-Id: h2', 'Accept: application/json, text/event-stream', 'Content-Type: application/json');
    my $res = McpSession::Http2::h2_request($h2, 'POST', '/mcp/call', '{"jsonrpc":"2.0","id":7,"method":"tools/call"}', @headers);
    is($res->{status}, 200, 'HTTP/2 POST: 200');
    my ($p) = $res->{body} =~ /^id: (\d+)\.1$/m;
    is($res->{body}, "id: $p.1\nevent: message\ndata: " . progress_json(1) . "\n\n: a backend comment\n\n"
        . "id: $p.2\ndata: " . progress_json(2) . "\n\nid: $p.3\ndata: " . response_json(7) . "\n\n",
        'HTTP/2: the same relayed bytes');
    my $again = McpSession::Http2::h2_request($h2, 'GET', '/mcp/x', undef, 'Mcp-Session-Id: h2',
        'Accept: text/event-stream', "Last-Event-ID: $p.2");
    is($again->{body}, ": connected\n\nid: $p.3\ndata: " . response_json(7) . "\n\n", 'HTTP/2 resume: the response, then the end');
}

# A backend the test drives: it answers one POST with a stream head, then
# sends each piece the test gives it ("END" closes), acknowledging each
# write; it exits 0 only if every write succeeded (nginx kept reading).
sub live_backend {
    socketpair(my $ctl, my $child_end, AF_UNIX, SOCK_STREAM, 0) or die "socketpair: $!";
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $live_port, Listen => 5, ReuseAddr => 1)
        or die "listen: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $ctl;
        $child_end->autoflush(1);
        $SIG{PIPE} = 'IGNORE';
        my $c = $listen->accept or exit 1;
        my $req = '';
        while ($req !~ /\r\n\r\n/) { sysread($c, $req, 4096, length $req) or exit 1 }
        my ($len) = $req =~ /Content-Length: (\d+)/i;
        my $body = substr($req, index($req, "\r\n\r\n") + 4);
        while (length($body) < ($len // 0)) { sysread($c, $body, 4096, length $body) or exit 1 }
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
        my $ok = 1;
        while (defined(my $line = <$child_end>)) {
            chomp $line;
            last if $line eq 'END';
            $line =~ s/\\n/\n/g;
            for (my $off = 0; $off < length $line;) {
                my $n = syswrite($c, $line, length($line) - $off, $off);
                if (!defined $n) { $ok = 0; last }
                $off += $n;
            }
            print {$child_end} "sent\n";
        }
        close $c;
        POSIX::_exit($ok ? 0 : 2);
    }
    close $child_end;
    close $listen;
    $ctl->autoflush(1);
    my $send = sub {
        my ($text) = @_;
        if ($text eq 'END') { print {$ctl} "END\n"; return }
        $text =~ s/\n/\\n/g;
        print {$ctl} "$text\n";
        my $ack = <$ctl>;
    };
    return ($send, $pid);
}

sub tool_call_headers { return ('Mcp-Session-Id' => $_[0], 'Accept' => 'application/json, text/event-stream',
    'Content-Type' => 'application/json') }
my $call_body = '{"jsonrpc":"2.0","id":7,"method":"tools/call"}';

# 10. A live backend: the resume waits for what the backend has not sent
#     yet and ends after the response; the POST's own client sees it all.
{
    my ($send, $pid) = live_backend();
    create('live');
    my $call = open_stream($n, 'POST', '/live/call', headers => [tool_call_headers('live')], body => $call_body);
    $send->("data: " . progress_json(1) . "\n\n");
    $call->read_until(qr/progress":1,/, 5);
    my ($p) = $call->data =~ /id: (\d+)\.1\n/;
    ok($p, "live POST stream $p: the first event arrived");
    my $resume = open_stream($n, 'GET', '/mcp/x', headers => ['Mcp-Session-Id' => 'live', 'Accept' => 'text/event-stream',
        'Last-Event-ID' => "$p.0"]);
    $resume->read_until(qr/progress":1,/, 5);
    like($resume->data, qr/id: $p\.1\ndata: [^\n]*progress":1,/, 'the resume replays event 1');
    $send->("data: " . progress_json(2) . "\n\n");
    $resume->read_until(qr/progress":2,/, 5);
    like($resume->data, qr/id: $p\.2\ndata: [^\n]*progress":2,/, '... then gets event 2 live');
    $send->("data: " . response_json(7) . "\n\n");
    $resume->read_until(qr/\r\n0\r\n\r\n$/, 5);
    like($resume->data, qr/id: $p\.3\ndata: [^\n]*"result"/, '... then the response');
    like($resume->data, qr/\r\n0\r\n\r\n$/, '... and ends cleanly');
    $send->('END');
    $call->read_until(qr/\r\n0\r\n\r\n$/, 5);
    like($call->data, qr/id: $p\.3\ndata: [^\n]*"result"/, 'the POST client got every event too');
    waitpid($pid, 0);
    is($? >> 8, 0, 'the backend wrote everything');
}

# 11. The client leaves mid-call (HTTP/1.1, then HTTP/2): nginx reads the
#     backend's answer to its end and records it; the resume gets it all.
{
    my ($send, $pid) = live_backend();
    create('gone');
    my $call = open_stream($n, 'POST', '/live/call', headers => [tool_call_headers('gone')], body => $call_body);
    $send->("data: " . progress_json(1) . "\n\n");
    $call->read_until(qr/progress":1,/, 5);
    my ($p) = $call->data =~ /id: (\d+)\.1\n/;
    $call->close;  # the client's connection drops
    $send->("data: " . progress_json($_) . "\n\n") for 2 .. 5;
    $send->("data: " . response_json(7) . "\n\n");
    $send->('END');
    waitpid($pid, 0);
    is($? >> 8, 0, 'HTTP/1.1: after the client left, every write of the backend succeeded');
    my $res = resume('gone', "$p.1");
    my @ids = @{ event_ids($res->{body}) };
    is("@ids", join(' ', map { "$p.$_" } 2 .. 6), '... and the resume gets events 2-5 and the response');
    like($res->{body}, qr/id: $p\.6\ndata: [^\n]*"result"/, '... the response last');
}
{
    my ($send, $pid) = live_backend();
    create('gone2');
    my $out = "$files/h2-call.out";
    my $curl = fork // die "fork: $!";
    if ($curl == 0) {
        exec('env', '-u', 'LD_PRELOAD', 'curl', '-s', '-N', '--http2-prior-knowledge', '--max-time', '30', '-X', 'POST',
            (map { ('-H', $_) } 'Mcp-Session-Id: gone2', 'Accept: application/json, text/event-stream',
             'Content-Type: application/json'), '--data-binary', $call_body, '-o', $out,
            "http://127.0.0.1:$h2/live/call") or POSIX::_exit(127);
    }
    $send->("data: " . progress_json(1) . "\n\n");
    ok(poll_until(5, sub { -s $out && do { open my $fh, '<', $out; local $/; <$fh> =~ /progress":1,/ } }),
        'HTTP/2 POST stream: the first event arrived');
    my ($p) = do { open my $fh, '<', $out; local $/; <$fh> } =~ /id: (\d+)\.1\n/;
    kill 'KILL', $curl;  # the client's connection drops
    waitpid($curl, 0);
    $send->("data: " . progress_json($_) . "\n\n") for 2 .. 3;
    $send->("data: " . response_json(7) . "\n\n");
    $send->('END');
    waitpid($pid, 0);
    is($? >> 8, 0, 'HTTP/2: after the client left, every write of the backend succeeded');
    my @ids = @{ event_ids(resume('gone2', "$p.1")->{body}) };
    is("@ids", join(' ', map { "$p.$_" } 2 .. 4), '... and the resume gets the rest');
}

# 12. A client that stops reading without closing (a network gone
#     silent): after send_timeout nginx stops waiting for it but not for
#     the backend, which writes its whole answer; the resume gets its end.
{
    my ($send, $pid) = live_backend();
    create('silent');
    my $call = open_stream($n, 'POST', '/slow/call', headers => [tool_call_headers('silent')], body => $call_body);
    $send->("data: " . progress_json(1) . "\n\n");
    $call->read_until(qr/progress":1,/, 5);
    my ($p) = $call->data =~ /id: (\d+)\.1\n/;
    # The client reads no more: 40 MB fill every socket buffer on the way.
    my $pad = '{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"' . ('y' x 800) . '"}}';
    $send->("data: $pad\n\n" x 45000);
    $send->("data: " . response_json(7) . "\n\n");
    $send->('END');
    waitpid($pid, 0);
    is($? >> 8, 0, 'a client silent for send_timeout: the backend still wrote its whole answer');
    my $res = resume('silent', "$p.1");
    like($res->{body}, qr/^: lagged \{"dropped":\d+\}$/m, '... the resume announces what the ring no longer holds');
    like($res->{body}, qr/id: $p\.45002\ndata: [^\n]*"result"[^\n]*\n\n\z/, '... and ends with the response');
    $call->close;
}

unlike($n->error_log, qr/\[(?:alert|emerg)\]|signal \d+/, 'no alert, no crashed worker');

done_testing();
