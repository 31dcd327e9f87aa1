# mcp_session_heal (issue mode): a session whose backend lost it (a
# restart: the SDK's 404, server-everything's 400) or whose pinned
# replica is gone gets a new backend session, and the client's request
# is answered by it with no error. The backends are stateful Perl MCP
# servers (t/lib/McpSession/FakeMcp.pm) that log what they receive, so
# each test sees the replayed initialize, notifications/initialized and
# the client's request exactly. Two workers, HTTP/1.1 and HTTP/2, chunked
# and file-buffered request bodies, a named location, auth_basic, a
# sticky upstream of three replicas, a heal that fails, and nginx -t.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http2;
use McpSession::FakeMcp;
use JSON::PP qw(decode_json);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Test::More;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    . '"capabilities":{"roots":{}},"clientInfo":{"name":"heal-test","version":"7"}}}';
sub call { my ($id) = @_; return qq({"jsonrpc":"2.0","id":$id,"method":"tools/call","params":{"name":"echo"}}) }

my $files = tempdir(CLEANUP => 1);
my $htpasswd = htpasswd_file($files, carol => 'secret');
sub backend { my ($name, %args) = @_; return McpSession::FakeMcp->start(port => free_port(), log => "$files/$name.log", %args) }
my $single = backend('single');
my $everything = backend('everything', lost => 400);
my @replicas = map { backend("replica$_") } 1 .. 3;
my $h2 = free_port();

my ($sp, $ep) = ($single->port, $everything->port);
my $servers = join '', map { '    server 127.0.0.1:' . $_->port . ";\n" } @replicas;
my $locations = <<"CONF";
location /single {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    proxy_pass http://127.0.0.1:$sp;
}
location /everything {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    proxy_pass http://127.0.0.1:$ep;
}
location /noheal {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    proxy_pass http://127.0.0.1:$sp;
}
location /small {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    client_body_buffer_size 1k;
    proxy_pass http://127.0.0.1:$sp;
}
location /authed {
    auth_basic "mcp";
    auth_basic_user_file $htpasswd;
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    proxy_pass http://127.0.0.1:$sp;
}
location /named {
    try_files /no-such-file \@healing;
}
location \@healing {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    proxy_pass http://127.0.0.1:$sp;
}
location /pool {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    proxy_pass http://pool;
}
location /streamed {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_stream on;
    mcp_session_heal on;
    proxy_pass http://127.0.0.1:$sp;
}
location /slowpool {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    proxy_connect_timeout 300ms;
    proxy_pass http://pool;
}
location /learnpool {
    mcp_session zone=mcp;
    proxy_connect_timeout 300ms;
    proxy_pass http://pool;
}
location /framed {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    proxy_set_header Content-Length \$content_length;
    proxy_pass http://127.0.0.1:$sp;
}
location /afterwards {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_heal on;
    post_action \@noted;
    proxy_pass http://127.0.0.1:$sp;
}
location \@noted { return 204; }
location = /status { mcp_session_status zone=mcp; }
CONF

my $n = start_nginx(
    workers     => 2,
    log_level   => 'info',
    http_config => "mcp_session_zone zone=mcp:1m;\nupstream pool {\n$servers    mcp_session_sticky;\n}\n"
                 . "server {\n    listen 127.0.0.1:$h2 http2;\n$locations}\n",
    config      => $locations,
);

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }
sub post {
    my ($uri, $body, @headers) = @_;
    return $n->request('POST', $uri, headers => ['Content-Type' => 'application/json',
                                                 'Accept' => 'application/json, text/event-stream', @headers],
                       body => $body);
}
sub open_session {
    my ($uri, @headers) = @_;
    my $res = post($uri, $initialize, @headers);
    die "initialize at $uri: $res->{status} $res->{body}" unless $res->{status} == 200;
    return h($res, 'Mcp-Session-Id');
}
sub result { my ($res) = @_; my $d = eval { decode_json($res->{body}) } // {}; return $d->{result} // {} }
sub counters { return decode_json($n->request('GET', '/status')->{body})->{counters} }
sub forget { my ($backend) = @_; McpSession::Http::send_raw($backend->port, "GET /control/forget HTTP/1.0\r\n\r\n") }
sub control { my ($backend, $what) = @_; McpSession::Http::send_raw($backend->port, "GET /control/$what HTTP/1.0\r\n\r\n") }
sub since { my ($backend, $from) = @_; my $all = $backend->received; return [@$all[$from .. $#$all]] }

# --- a backend restart (the SDK's 404): healed, the client sees a 200
my $sid = open_session('/single');
my $first = post('/single', call(2), 'Mcp-Session-Id' => $sid);
is($first->{status}, 200, 'a session made in issue mode answers');
my $old_backend_session = result($first)->{session};
like($old_backend_session, qr/^$sp-\d+$/, '... from a backend session of its own');

forget($single);
my $mark = scalar @{ $single->received };
my $before = counters();
my $healed = post('/single', call(3), 'Mcp-Session-Id' => $sid);
is($healed->{status}, 200, 'after the backend forgot the session, the next call is still answered 200');
my $new_backend_session = result($healed)->{session};
like($new_backend_session, qr/^$sp-\d+$/, '... by a backend session');
isnt($new_backend_session, $old_backend_session, '... a new one');
is(decode_json($healed->{body})->{id}, 3, "... the answer is the client's call's");
is(h($healed, 'Mcp-Session-Id'), '', '... and no backend id reaches the client');

my $seen = since($single, $mark);
is(scalar @$seen, 4, 'the backend received four requests: the lost call, initialize, initialized, the call again');
is_deeply([map { $_->{sid} } @$seen], [$old_backend_session, '', $new_backend_session, $new_backend_session],
          '... under the old backend id, none, then the new one');
is($seen->[1]{body}, $initialize, "... the replayed initialize is the client's, byte for byte");
is($seen->[2]{body}, '{"jsonrpc":"2.0","method":"notifications/initialized"}', '... then notifications/initialized');
is($seen->[3]{body}, call(3), "... then the client's request, byte for byte");

my $after = counters();
is($after->{sessions_healed} - $before->{sessions_healed}, 1, 'status counts the heal');
is($after->{sessions_backend_lost} - $before->{sessions_backend_lost}, 0, '... and no session lost');

$mark = scalar @{ $single->received };
my $again = post('/single', call(4), 'Mcp-Session-Id' => $sid);
is(result($again)->{session}, $new_backend_session, 'the next call goes straight to the new backend session');
is(scalar @{ since($single, $mark) }, 1, '... with no second heal');
ok($n->wait_for_log(qr/session healed \(its backend no longer knows it\)/), 'the heal is logged at info');

# --- server-everything's 400 is a loss too
$sid = open_session('/everything');
my $everything_session = result(post('/everything', call(2), 'Mcp-Session-Id' => $sid))->{session};
forget($everything);
my $res = post('/everything', call(5), 'Mcp-Session-Id' => $sid);
is($res->{status}, 200, "server-everything's 400 for a forgotten session: healed, 200");
isnt(result($res)->{session}, $everything_session, '... by a new backend session');

# --- heal off: the lost session ends with nginx's 404 as before
$sid = open_session('/noheal');
post('/noheal', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
$before = counters();
$res = post('/noheal', call(6), 'Mcp-Session-Id' => $sid);
is($res->{status}, 404, 'without mcp_session_heal a lost session gets 404');
like($res->{body}, qr/re-initialize/i, '... with the re-initialize body');
is(counters()->{sessions_healed} - $before->{sessions_healed}, 0, '... and no heal');

# --- a heal that fails: the backend refuses the initialize
$sid = open_session('/single');
post('/single', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
control($single, 'refuse');
$before = counters();
$res = post('/single', call(7), 'Mcp-Session-Id' => $sid);
is($res->{status}, 404, 'a heal whose initialize the backend refuses ends the session with 404');
like($res->{body}, qr/re-initialize/i, '... the re-initialize body, never the 503');
$after = counters();
is($after->{heals_failed} - $before->{heals_failed}, 1, 'status counts the failed heal');
is($after->{sessions_backend_lost} - $before->{sessions_backend_lost}, 1, '... and the lost session');
control($single, 'accept');
is(post('/single', call(8), 'Mcp-Session-Id' => $sid)->{status}, 404, '... which stays ended');

# --- an initialize answer cut short mid-body is no new session
$sid = open_session('/single');
post('/single', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
control($single, 'truncate');
$before = counters();
$res = post('/single', call(16), 'Mcp-Session-Id' => $sid);
is($res->{status}, 404, 'an initialize answer that stops mid-body fails the heal: 404') or diag("$res->{status} $res->{body}");
like($res->{body}, qr/re-initialize/i, '... with the re-initialize body');
is(counters()->{heals_failed} - $before->{heals_failed}, 1, '... counted as a failed heal');

# --- a location that passes $content_length on: each step announces its own body's length
$sid = open_session('/framed');
post('/framed', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
$mark = scalar @{ $single->received };
is(post('/framed', call(17), 'Mcp-Session-Id' => $sid)->{status}, 200, 'proxy_set_header Content-Length $content_length: healed');
$seen = since($single, $mark);
is_deeply([map { $_->{body} } @$seen[1 .. 3]],
          [$initialize, '{"jsonrpc":"2.0","method":"notifications/initialized"}', call(17)],
          '... and every step reached the backend whole');

# --- post_action would take the request over after the first answer: no heal there
$sid = open_session('/afterwards');
post('/afterwards', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
is(post('/afterwards', call(18), 'Mcp-Session-Id' => $sid)->{status}, 404, 'a location with post_action does not heal: 404');

# --- bodies nginx must send again whole: chunked, and kept in a temp file
$sid = open_session('/single');
post('/single', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
$mark = scalar @{ $single->received };
my $chunked_body = call(9);
my $half = int(length($chunked_body) / 2);
my $raw = "POST /single HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nMcp-Session-Id: $sid\r\n"
    . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    . sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", $half, substr($chunked_body, 0, $half),
              length($chunked_body) - $half, substr($chunked_body, $half));
$res = $n->raw_request($raw);
is($res->{status}, 200, 'a chunked request of a lost session is healed');
is(since($single, $mark)->[-1]{body}, $chunked_body, '... and the backend gets its body whole');

$sid = open_session('/small');
post('/small', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
$mark = scalar @{ $single->received };
my $big = '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'
    . ('y' x 6000) . '"}}}';
$res = post('/small', $big, 'Mcp-Session-Id' => $sid);
is($res->{status}, 200, 'a request whose body nginx buffered to a temp file is healed');
is(since($single, $mark)->[-1]{body}, $big, '... and sent again whole');

# --- HTTP/2
sub h2 { my ($path, $body, @headers) = @_; return McpSession::Http2::h2_request($h2, 'POST', $path, $body,
         'Content-Type: application/json', 'Accept: application/json, text/event-stream', @headers) }
my $h2init = h2('/single', $initialize);
$sid = $h2init->{headers}{'mcp-session-id'}[0];
ok($sid, 'HTTP/2: a session made');
h2('/single', call(2), "Mcp-Session-Id: $sid");
forget($single);
$res = h2('/single', call(11), "Mcp-Session-Id: $sid");
is($res->{status}, 200, 'HTTP/2: a lost session is healed');
is(decode_json($res->{body})->{id}, 11, "... and the answer is the client's call's");

# --- next to access control and internal redirects
my @auth = (Authorization => 'Basic ' . encode_base64('carol:secret', ''));
$sid = open_session('/authed', @auth);
post('/authed', call(2), 'Mcp-Session-Id' => $sid, @auth);
forget($single);
is(post('/authed', call(12), 'Mcp-Session-Id' => $sid, @auth)->{status}, 200,
   'auth_basic: the heal runs the location again with the same credentials');
is(post('/authed', call(13), 'Mcp-Session-Id' => $sid)->{status}, 401, '... and without them the request is refused');

$sid = open_session('/named');
post('/named', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
$mark = scalar @{ $single->received };
$res = post('/named', call(14), 'Mcp-Session-Id' => $sid);
is($res->{status}, 200, 'a named location (try_files): healed in that location');
is(scalar @{ since($single, $mark) }, 4, '... with the same four backend requests');

# --- mcp_session_stream on: the healed call's SSE answer is relayed with
# nginx's ids and recorded, and a resume of it replays it
$sid = open_session('/streamed');
post('/streamed', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
my $stream_call = '{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"stream"}}';
$res = post('/streamed', $stream_call, 'Mcp-Session-Id' => $sid);
is($res->{status}, 200, 'stream on: a lost session whose call is answered with SSE is healed');
like(h($res, 'Content-Type'), qr{^text/event-stream}, '... the answer is the stream');
my @ids = $res->{body} =~ /^id: (\S+)$/mg;
is(scalar @ids, 2, '... both of its events arrive');
like($ids[0] // '', qr/^\d+\.1$/, "... with nginx's ids, not the backend's");
like($res->{body}, qr/"id":15,"result":\{"replica":$sp,"session":"$sp-\d+"\}/, '... the result of the new backend session');
my $resumed = $n->request('GET', '/streamed', headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream',
                                                          'Last-Event-ID' => $ids[0]]);
like($resumed->{body}, qr/^id: \Q$ids[1]\E$/m, '... and a resume after its first event replays the second from the ring');

# --- only POSTs are replayed: a DELETE of a lost session ends it
$sid = open_session('/single');
post('/single', call(2), 'Mcp-Session-Id' => $sid);
forget($single);
$before = counters();
is($n->request('DELETE', '/single', headers => ['Mcp-Session-Id' => $sid])->{status}, 404,
   'a DELETE of a lost session is not healed: 404');
is(counters()->{sessions_healed} - $before->{sessions_healed}, 0, '... no heal counted');

# --- a sticky upstream: the replica that made the sessions goes away
my %home;
for my $i (1 .. 9) {
    my $s = open_session('/pool');
    $home{$s} = result(post('/pool', call(2), 'Mcp-Session-Id' => $s))->{replica};
}
my $victim = $replicas[1]->port;
my @stranded = grep { $home{$_} == $victim } keys %home;
cmp_ok(scalar @stranded, '>=', 2, 'round robin put sessions on the replica that will go');
$replicas[1]->stop;
$before = counters();
my ($moved, $stayed, %new_home) = (0, 0);
for my $s (@stranded) {
    my $r1 = post('/pool', call(20), 'Mcp-Session-Id' => $s);
    $moved++ if $r1->{status} == 200 && result($r1)->{replica} != $victim;
    $new_home{$s} = result($r1)->{replica};
}
is($moved, scalar @stranded, 'each session of the stopped replica is answered 200 by a live one');
for my $s (@stranded) {
    for (1 .. 3) { $stayed++ if (result(post('/pool', call(21), 'Mcp-Session-Id' => $s))->{replica} // 0) == $new_home{$s} }
}
is($stayed, 3 * @stranded, '... and stays pinned there afterwards, from both workers');
my $untouched = 0;
for my $s (grep { $home{$_} != $victim } keys %home) {
    $untouched++ if result(post('/pool', call(22), 'Mcp-Session-Id' => $s))->{replica} == $home{$s};
}
is($untouched, 9 - @stranded, 'sessions of the live replicas stay where they were');
$after = counters();
is($after->{sessions_healed} - $before->{sessions_healed}, scalar @stranded, 'status counts one heal per moved session');
is($after->{sessions_replica_lost} - $before->{sessions_replica_lost}, 0, '... and no session lost');
my $upstreams = decode_json($n->request('GET', '/status')->{body})->{upstreams};
ok(!$upstreams->{"127.0.0.1:$victim"}, 'status: no session is pinned to the stopped replica any more');

# --- a replica that stops accepting: connecting to it times out
my $hung = $replicas[2]->port;
my (@learned, @issued);
for (1 .. 8) {
    my $res = post('/learnpool', $initialize);
    my $s = h($res, 'Mcp-Session-Id');
    push @learned, $s if result(post('/learnpool', call(2), 'Mcp-Session-Id' => $s))->{replica} == $hung;
    $s = open_session('/slowpool');
    push @issued, $s if result(post('/slowpool', call(2), 'Mcp-Session-Id' => $s))->{replica} == $hung;
}
ok(@learned && @issued, 'sessions of both modes on the replica that will hang');
$replicas[2]->stop;
# Its port listens again, but its accept queue is full and never drained:
# further SYNs are dropped, so a connect to it times out.
my $hang = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $hung, Listen => 1, ReuseAddr => 1)
    or die "listen on $hung: $!";
my @queued = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $hung, Blocking => 0) } 1 .. 4;
$before = counters();
$res = post('/learnpool', call(30), 'Mcp-Session-Id' => $learned[0]);
is($res->{status}, 404, 'learn mode: proxy_connect_timeout to the pinned replica ends the session with 404');
like($res->{body}, qr/re-initialize/i, '... the re-initialize body, never a 504');
my $timed_out_heals = 0;
for my $s (@issued) {
    my $r1 = post('/slowpool', call(31), 'Mcp-Session-Id' => $s);
    $timed_out_heals++ if $r1->{status} == 200 && result($r1)->{replica} == $replicas[0]->port;
}
is($timed_out_heals, scalar @issued, 'issue mode with healing: each session of the hung replica is served by the live one');
$after = counters();
is($after->{sessions_replica_lost} - $before->{sessions_replica_lost}, 1, '... and only the learn-mode session was lost');
like($n->error_log, qr/upstream timed out \(110: Connection timed out\) while connecting to upstream/,
     '... (it was a connect timeout)');
close $_ for grep { defined } @queued;
close $hang;

unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'no worker crashed, no alert');

# --- nginx -t
sub config_error {
    my ($conf, $http) = @_;
    my $t = McpSession::Nginx->new(servroot => McpSession::Nginx::repo_root() . '/t/servroot-039-t', port => free_port(),
                                   http_config => "mcp_session_zone zone=mcp:1m;\n" . ($http // ''), config => $conf);
    my ($code, $out) = $t->check_config;
    return $code == 0 ? '' : $out;
}
like(config_error("location /x { mcp_session zone=mcp; mcp_session_heal on; proxy_pass http://127.0.0.1:$sp; }"),
     qr/"mcp_session_heal" needs "mcp_session_mode issue" in location "\/x"/, 'nginx -t: heal in learn mode');
like(config_error("location /x { mcp_session_heal on; proxy_pass http://127.0.0.1:$sp; }"),
     qr/"mcp_session_heal" is on in location "\/x", which has no mcp_session zone/, 'nginx -t: heal without a zone');
like(config_error("location /x { mcp_session zone=mcp; mcp_session_mode issue; mcp_session_heal yes; }"),
     qr/invalid value "yes" in "mcp_session_heal"/, 'nginx -t: heal takes on or off');
is(config_error("mcp_session_heal on;\nlocation /x { mcp_session zone=mcp; proxy_pass http://127.0.0.1:$sp; }"), '',
   'nginx -t: heal on at server level applies to issue-mode locations only, so a learn one below it is fine');

done_testing();
