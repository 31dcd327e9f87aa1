# The backend's own stream (issue 13, item 4): with mcp_session_stream on
# nginx answers a session's GET itself and holds the backend's GET stream
# for the session, one across both workers, while a client stream is open
# and for mcp_session_stream_grace after; the backend's messages reach the
# client stream with nginx's ids and are replayed after a reconnect. The
# backends are Perl MCP servers (t/lib/McpSession/FakeMcp.pm) that hold
# real GET streams and log every GET they get. HTTP/1.1 and HTTP/2 client
# streams, issue and learn mode, a backend without a stream (405), one
# holding another GET of the session (409: asked again with backoff), a
# backend that drops its stream, DELETE, reload, nginx -t.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http2;
use McpSession::FakeMcp;
use JSON::PP qw(decode_json);
use File::Temp qw(tempdir);
use Test::More;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    . '"capabilities":{},"clientInfo":{"name":"backend-stream-test","version":"1"}}}';

my $files = tempdir(CLEANUP => 1);
my $streaming = McpSession::FakeMcp->start(port => free_port(), log => "$files/streaming.log", get => 'stream');
my $refusing = McpSession::FakeMcp->start(port => free_port(), log => "$files/refusing.log");
my $busy = McpSession::FakeMcp->start(port => free_port(), log => "$files/busy.log", get => 'busy');
my ($sp, $rp) = ($streaming->port, $refusing->port);
my $h2 = free_port();

my $locations = <<"CONF";
location /issue {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_stream on;
    mcp_session_stream_grace 2s;
    proxy_pass http://127.0.0.1:$sp;
}
location /learn {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_stream_grace 2s;
    proxy_pass http://127.0.0.1:$sp;
}
location /refusing {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_stream on;
    proxy_pass http://127.0.0.1:$rp;
}
location /busy {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_stream on;
    proxy_pass http://127.0.0.1:BUSY;
}
location = /status { mcp_session_status zone=mcp; }
CONF
$locations =~ s/BUSY/$busy->port/e;

my $n = start_nginx(
    workers     => 2,
    log_level   => 'info',
    http_config => "mcp_session_zone zone=mcp:1m;\nserver {\n    listen 127.0.0.1:$h2 http2;\n$locations}\n",
    config      => $locations,
);

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }
sub open_session {
    my ($uri) = @_;
    my $res = $n->request('POST', $uri, headers => ['Content-Type' => 'application/json',
                                                    'Accept' => 'application/json, text/event-stream'],
                          body => $initialize);
    die "initialize at $uri: $res->{status} $res->{body}" unless $res->{status} == 200;
    return h($res, 'Mcp-Session-Id');
}
sub client_stream {
    my ($uri, $sid, @headers) = @_;
    my $s = open_stream($n, 'GET', $uri, headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream',
                                                     'MCP-Protocol-Version' => '2025-06-18', @headers]);
    $s->read_until(qr/\r\n\r\n/, 5);
    return $s;
}
sub counters { return decode_json($n->request('GET', '/status')->{body})->{counters} }
sub gets_of { my ($backend, $event, $sid) = @_; return [grep { $_->{event} eq $event && (!defined $sid || $_->{sid} eq $sid) } @{ $backend->gets }] }
# The backend sessions made so far, in order ("PORT-N").
sub backend_sessions { my ($backend) = @_; return [map { $_->{sid} } grep { $_->{sid} ne '' } @{ $backend->received }] }
sub messages_in { my ($text) = @_; return [$text =~ /"data":"([^"]+)"\}\}/g] }
sub last_id_in { my ($text) = @_; my @ids = $text =~ /^id: (\d+)$/mg; return $ids[-1] }

my $before = counters();

# --- issue mode: the client's stream opens the backend's, with the backend's own id
my $sid = open_session('/issue');
my $stream = client_stream('/issue', $sid);
like($stream->data, qr{^HTTP/1\.1 200}, 'the client stream opens');
ok(poll_until(5, sub { @{ gets_of($streaming, 'open') } == 1 }), 'nginx opened the backend\'s own GET stream');
my $backend_sid = gets_of($streaming, 'open')->[0]{sid};
like($backend_sid, qr/^$sp-\d+$/, '... naming the session by the backend\'s id');
isnt($backend_sid, $sid, '... not nginx\'s');
is(gets_of($streaming, 'open')->[0]{last_event_id}, '', '... with no Last-Event-ID the first time');

$streaming->notify($backend_sid, 'one');
$streaming->notify($backend_sid, 'two');
my $seen = $stream->read_until(qr/"two"/, 5);
is_deeply(messages_in($seen), ['one', 'two'], "the backend's messages reach the client stream, in order");
like($seen, qr/^id: \d+\r?\nevent: message\r?\ndata: \{"jsonrpc":"2.0","method":"notifications\/message"/m,
     '... as message events under nginx\'s decimal ids');
unlike($seen, qr/id: $sp-/, '... never the backend\'s ids');
my $last = last_id_in($seen);

# --- the client drops; what the backend says meanwhile is replayed at the reconnect
$stream->close;
$streaming->notify($backend_sid, 'three');
$streaming->notify($backend_sid, 'four');
ok(poll_until(5, sub { counters()->{backend_stream_events} - $before->{backend_stream_events} >= 4 }),
   'messages sent while no client stream is open are recorded');
$stream = client_stream('/issue', $sid, 'Last-Event-ID' => $last);
$seen = $stream->read_until(qr/"four"/, 5);
is_deeply(messages_in($seen), ['three', 'four'], 'the reconnected stream replays exactly the missed messages');
is(scalar @{ gets_of($streaming, 'open') }, 1, '... and the backend still holds its one GET: held through the gap');
is(scalar @{ gets_of($streaming, 'closed') }, 0, '... which it never saw closed');

# --- what the backend's GET carries
my $head = gets_of($streaming, 'open')->[0]{head};
like($head, qr/^MCP-Protocol-Version: 2025-06-18\r?$/mi, "the backend's GET carries the client's protocol version");
like($head, qr{^Accept: text/event-stream\r?$}mi, '... and its Accept');

# --- streams opened again and again (both workers): still one backend GET
$stream->close;
for my $i (1 .. 6) {
    my $again = client_stream('/issue', $sid);
    like($again->data, qr{^HTTP/1\.1 200}, "client stream $i opens");
    $again->close;
}
is(scalar @{ gets_of($streaming, 'open') }, 1, 'six more client streams (two workers share them): the backend still has one GET');

# --- a stream over HTTP/2 sees the same messages live
my $out = "$files/h2.out";
my $pid = McpSession::Http2::h2_stream_to($h2, '/issue', $out, "Mcp-Session-Id: $sid", 'Accept: text/event-stream',
                                          'MCP-Protocol-Version: 2025-06-18');
ok(poll_until(5, sub { -s $out && do { open my $f, '<', $out; local $/; <$f> =~ /^HTTP\/2 200/ } }), 'an HTTP/2 client stream opens');
$streaming->notify($backend_sid, 'five');
ok(poll_until(5, sub { open my $f, '<', $out or return 0; local $/; <$f> =~ /"five"/ }),
   "... and gets the backend's next message live");
kill 'TERM', $pid;
waitpid $pid, 0;

# --- the grace period ends: the backend's stream is closed
ok(poll_until(10, sub { @{ gets_of($streaming, 'closed', $backend_sid) } == 1 }),
   'with no client stream for mcp_session_stream_grace, nginx closes the backend\'s stream');
is(scalar @{ gets_of($streaming, 'open') }, 1, '... without opening another');
$stream = client_stream('/issue', $sid);
ok(poll_until(5, sub { @{ gets_of($streaming, 'open') } == 2 }), 'a client stream after that opens it again');

# --- the backend drops its stream: nginx reopens it, resuming after the backend's last id
McpSession::Http::send_raw($sp, "GET /control/drop HTTP/1.0\r\n\r\n");
ok(poll_until(5, sub { @{ gets_of($streaming, 'open') } == 3 }), 'a stream the backend closes is reopened');
is(gets_of($streaming, 'open')->[2]{last_event_id}, '', '... with no Last-Event-ID when the backend sent no event on it');
$streaming->notify($backend_sid, 'six');
$seen = $stream->read_until(qr/"six"/, 5);
is_deeply(messages_in($seen), ['six'], '... and its messages flow again');
McpSession::Http::send_raw($sp, "GET /control/drop HTTP/1.0\r\n\r\n");
ok(poll_until(5, sub { @{ gets_of($streaming, 'open') } == 4 }), 'dropped again, reopened again');
is(gets_of($streaming, 'open')->[3]{last_event_id}, "$backend_sid-1", "... resuming after the backend's own last id");

# --- DELETE ends the session, its client stream and the backend's stream
my $closed_before = scalar @{ gets_of($streaming, 'closed') };
my $deleted = $n->request('DELETE', '/issue', headers => ['Mcp-Session-Id' => $sid]);
is($deleted->{status}, 202, 'DELETE is passed to the backend');
$stream->read_until(qr/\z\A/, 3);
ok($stream->closed, '... the client stream ends');
ok(poll_until(10, sub { @{ gets_of($streaming, 'closed') } > $closed_before }), "... and so does the backend's stream");
$stream->close;

# --- learn mode: the one id there is
my $learned = open_session('/learn');
like($learned, qr/^$sp-\d+$/, 'learn mode: the backend\'s id is the session\'s');
$stream = client_stream('/learn', $learned);
ok(poll_until(5, sub { @{ gets_of($streaming, 'open', $learned) } == 1 }), '... its stream GET opens the backend\'s, by that id');
$streaming->notify($learned, 'seven');
is_deeply(messages_in($stream->read_until(qr/"seven"/, 5)), ['seven'], '... and the messages arrive');

# --- a backend without a stream of its own (405) is asked once per session
my $plain = open_session('/refusing');
for (1 .. 3) {
    my $s = client_stream('/refusing', $plain);
    like($s->data, qr{^HTTP/1\.1 200}, 'a client stream of a backend without one still opens');
    $s->close;
}
ok(poll_until(5, sub { @{ gets_of($refusing, 'refused') } >= 1 }), 'the backend was asked for its stream');
my $log = $n->error_log;
is(scalar @{ gets_of($refusing, 'refused') }, 1, '... once: its 405 is remembered for the session');
like($log, qr/answered the session's stream GET with 405/, '... and logged at info');

# --- a backend that holds another GET of the session (409, another
#     node's until its grace ends) is asked again, with backoff
my $contended = open_session('/busy');
my $waiting = client_stream('/busy', $contended);
ok(poll_until(10, sub { @{ gets_of($busy, 'busy') } >= 2 }), 'a 409 to the stream GET is retried while a client listens');
$waiting->close;

# --- counters
my $after = counters();
cmp_ok($after->{backend_streams_opened} - $before->{backend_streams_opened}, '>=', 6, 'status counts the GETs nginx opened');
is($after->{backend_stream_events} - $before->{backend_stream_events}, 7, '... and the 7 messages it recorded');
is($after->{backend_stream_events_unrecorded} - $before->{backend_stream_events_unrecorded}, 0, '... none dropped');

# --- reload: the old worker gives its backend stream up and exits; a new stream holds it again
my $learned_closed = scalar @{ gets_of($streaming, 'closed', $learned) };
$n->reload;
$stream->read_until(qr/\z\A/, 5);
ok($stream->closed, 'reload ends the client stream cleanly');
ok(poll_until(10, sub { @{ gets_of($streaming, 'closed', $learned) } > $learned_closed }),
   "... and the old worker closes the backend's stream");
$stream->close;
$stream = client_stream('/learn', $learned);
ok(poll_until(5, sub { @{ gets_of($streaming, 'open', $learned) } == 2 }), 'the reconnecting client makes a new worker hold it');
$streaming->notify($learned, 'eight');
is_deeply(messages_in($stream->read_until(qr/"eight"/, 5)), ['eight'], '... and messages flow through the new worker');
$stream->close;

$log = $n->error_log;
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg in the error log (no socket left open at exit)');
unlike($log, qr/header already sent/, '... and no double header');

# --- a hostile URI and the client's encodings never reach the backend raw
my $hostile = open_session('/issue');
my $opens_now = scalar @{ gets_of($streaming, 'open') };
$stream = client_stream('/issue%0D%0AX-Evil:%201', $hostile, 'Accept-Encoding' => 'gzip');
ok(poll_until(5, sub { @{ gets_of($streaming, 'open') } == $opens_now + 1 }), 'a stream GET with CR LF escaped in its path is held');
my $hostile_get = gets_of($streaming, 'open')->[-1];
is($hostile_get->{path}, '/issue%0D%0AX-Evil:%201', '... its path reaches the backend as the client wrote it, escaped');
unlike($hostile_get->{head}, qr/^X-Evil/mi, '... with no header injected');
unlike($hostile_get->{head}, qr/^Accept-Encoding/mi, "... and without the client's Accept-Encoding (nginx reads the stream as text)");
$stream->close;

# --- a backend that lost the session (404) is asked again by the next client stream
McpSession::Http::send_raw($sp, "GET /control/forget HTTP/1.0\r\n\r\n");
my $lost_before = scalar @{ gets_of($streaming, 'lost') };
$stream = client_stream('/issue', $hostile);
McpSession::Http::send_raw($sp, "GET /control/drop HTTP/1.0\r\n\r\n");
ok(poll_until(5, sub { @{ gets_of($streaming, 'lost') } > $lost_before }),
   'the stream of a session the backend forgot is reopened and answered 404');
$stream->close;
$lost_before = scalar @{ gets_of($streaming, 'lost') };
$stream = client_stream('/issue', $hostile);
ok(poll_until(5, sub { @{ gets_of($streaming, 'lost') } > $lost_before }),
   '... which is not taken for "no stream": the next client stream asks again');
$stream->close;

# --- the worker holding it dies: its claim is taken over by the next client stream
my $opens_before = scalar @{ gets_of($streaming, 'open') };
my $orphan = open_session('/issue');
$stream = client_stream('/issue', $orphan);
ok(poll_until(5, sub { @{ gets_of($streaming, 'open') } == $opens_before + 1 }), "a new session's backend stream is held");
my $orphan_backend = gets_of($streaming, 'open')->[-1]{sid};
my $holder_died = 0;
for my $pid (@{ $n->worker_pids }) {
    kill 'KILL', $pid;
    $holder_died = poll_until(3, sub { @{ gets_of($streaming, 'closed', $orphan_backend) } == 1 });
    last if $holder_died;
}
ok($holder_died, 'killing the worker that held the backend stream closes it');
$stream->close;
ok(poll_until(10, sub { @{ $n->worker_pids } == 2 }), '... and the master replaces the worker');
$stream = client_stream('/issue', $orphan);
ok(poll_until(5, sub { @{ gets_of($streaming, 'open', $orphan_backend) } == 2 }),
   "a client stream after that holds it again: the dead worker's claim did not block it");
$streaming->notify($orphan_backend, 'nine');
is_deeply(messages_in($stream->read_until(qr/"nine"/, 5)), ['nine'], '... and its messages flow');
$stream->close;

# --- nginx -t
my $bad = McpSession::Nginx->new(servroot => "$files/bad", port => free_port(),
                                 http_config => 'mcp_session_zone zone=t:1m;',
                                 config => "location / { mcp_session zone=t; mcp_session_stream on; mcp_session_stream_grace 500ms; }");
my ($rc, $output) = $bad->check_config;
isnt($rc, 0, 'nginx -t refuses a grace shorter than a second');
like($output, qr/mcp_session_stream_grace 500ms is shorter than 1s/, '... saying so');

done_testing();
