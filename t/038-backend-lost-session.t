# The backend lost the session: a live session answered by its backend
# with a 404 JSON-RPC error, or a 400 whose error says the session is
# unknown (server-everything after a restart), ends at the edge and the
# client gets nginx's own 404 re-initialize answer; any other 400 or 404
# passes through byte for byte and the session stays. Two workers, learn
# and issue mode, Content-Length and chunked answers, HTTP/2, and the
# mcp_session_lost_session_400 variants.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http2;
use Test::More;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use File::Temp qw(tempdir);

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
my $call = '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo"}}';

# server-everything's answer to a session it does not know, byte for byte.
my $everything_400 = '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}';
my $params_400 = '{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"Invalid params: session_name is required"}}';
my $version_400 = '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: Unsupported protocol version"},"id":null}';
my $gone_400 = '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Context gone"},"id":null}';
my $sdk_404 = '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}';
my $html_404 = "<html><body><h1>Cannot POST /mcp/other</h1></body></html>\n";
# A session error padded past answer_body_limit: too long to be judged.
my $big_400 = '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided","data":"'
    . ('x' x 5000) . '"},"id":null}';

my $files = tempdir(CLEANUP => 1);
mkdir "$files/files" or die "mkdir: $!";
open my $fh, '>', "$files/files/big400.json" or die "big400.json: $!";
print {$fh} $big_400;
close $fh;

my $h2 = free_port();
my $perl_port = free_port();

# A Perl backend for chunked answers: /chunked/NAME answers that body in
# pieces (Transfer-Encoding: chunked), anything else 200 with the session
# id given in ?sid=.
my %chunked_bodies = (lost400 => [400, $everything_400], params400 => [400, $params_400], big400 => [400, $big_400],
    lost404 => [404, $sdk_404]);

sub start_perl_backend {
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $perl_port, Listen => 16, ReuseAddr => 1)
        or die "listen: $!";
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    $SIG{PIPE} = 'IGNORE';
    while (my $c = $listen->accept) {
        my $req = '';
        while ($req !~ /\r\n\r\n/) { sysread($c, $req, 4096, length $req) or last }
        my ($len) = $req =~ /Content-Length: (\d+)/i;
        my $body = substr($req, index($req, "\r\n\r\n") + 4);
        while (length($body) < ($len // 0)) { sysread($c, $body, 4096, length $body) or last }
        my ($path) = $req =~ m{^\S+ (\S+)};
        if ($path =~ m{/chunked/(\w+)} && $chunked_bodies{$1}) {
            my ($status, $text) = @{ $chunked_bodies{$1} };
            syswrite($c, "HTTP/1.1 $status Bad\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                . "Mcp-Session-Id: backend-side\r\nConnection: close\r\n\r\n");
            # Three pieces, each its own read for nginx: the body filter
            # collects across calls.
            my $third = int(length($text) / 3) + 1;
            for (my $off = 0; $off < length $text; $off += $third) {
                my $piece = substr($text, $off, $third);
                syswrite($c, sprintf("%x\r\n%s\r\n", length $piece, $piece));
                select(undef, undef, undef, 0.03);
            }
            syswrite($c, "0\r\n\r\n");
        } else {
            my ($sid) = $path =~ /sid=([\w-]+)/;
            my $header = $sid ? "Mcp-Session-Id: $sid\r\n" : '';
            syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n${header}Content-Length: 3\r\n"
                . "Connection: close\r\n\r\nok\n");
        }
        close $c;
    }
    POSIX::_exit(0);
}

my $mcp_locations = <<"CONF";
    location /mcp {
        mcp_session zone=mcp;
        mcp_session_inspect_body on;
        add_header X-Session-Status \$mcp_session_status always;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
    location /imcp {
        mcp_session zone=mcp;
        mcp_session_mode issue;
        mcp_session_inspect_body on;
        add_header X-Session-Status \$mcp_session_status always;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/ibackend;
    }
    location /cmcp {
        mcp_session zone=mcp;
        proxy_http_version 1.1;
        proxy_buffering off;
        add_header X-Session-Status \$mcp_session_status always;
        proxy_pass http://127.0.0.1:$perl_port;
    }
    location /offmcp {
        mcp_session zone=mcp;
        mcp_session_lost_session_400 off;
        add_header X-Session-Status \$mcp_session_status always;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
    location /phrasemcp {
        mcp_session zone=mcp;
        mcp_session_lost_session_400 "CONTEXT GONE";
        add_header X-Session-Status \$mcp_session_status always;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
    location /bothmcp {
        mcp_session zone=mcp;
        mcp_session_lost_session_400 default "context gone";
        add_header X-Session-Status \$mcp_session_status always;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
CONF

my $http = <<"CONF";
mcp_session_zone zone=mcp:1m;
server {
    listen 127.0.0.1:$h2 http2;
$mcp_locations
}
CONF

my $backends = <<"CONF";
$mcp_locations
location /backend {
    default_type application/json;
    add_header ETag '"e1"' always;
    add_header Cache-Control 'max-age=600' always;
    expires 1h;
    add_header Mcp-Session-Id backend-side always;
    if (\$arg_answer = lost400) { return 400 '$everything_400'; }
    if (\$arg_answer = params400) { return 400 '$params_400'; }
    if (\$arg_answer = version400) { return 400 '$version_400'; }
    if (\$arg_answer = gone400) { return 400 '$gone_400'; }
    if (\$arg_answer = lost404) { return 404 '$sdk_404'; }
    if (\$arg_sid) { add_header Mcp-Session-Id \$arg_sid; }
    return 200 "ok\\n";
}
location /backend/other { default_type text/html; return 404 '$html_404'; }
location = /backend/big { error_page 418 =400 /files/big400.json; return 418; }
location /files/ { root $files; default_type application/json; }
location /ibackend {
    default_type application/json;
    if (\$arg_answer = lost400) { add_header Mcp-Session-Id backend-7 always; return 400 '$everything_400'; }
    if (\$arg_answer = params400) { add_header Mcp-Session-Id backend-7 always; return 400 '$params_400'; }
    add_header Mcp-Session-Id backend-7;
    add_header X-Backend-Saw "[\$http_mcp_session_id]";
    return 200 "ok\\n";
}
location = /status { mcp_session_status zone=mcp; }
CONF

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

my $backend_pid = start_perl_backend();
my $n = start_nginx(workers => 2, log_level => 'info', http_config => $http, config => $backends);

sub post {
    my ($uri, $sid, $body) = @_;
    return $n->request('POST', $uri, headers => [$sid ? ('Mcp-Session-Id' => $sid) : ()], body => $body // $call);
}

sub learn {
    my ($sid, $prefix) = @_;
    $prefix //= '/mcp';
    my $res = post("$prefix?sid=$sid", undef, $initialize);
    die "initialize of $sid: $res->{status}" unless $res->{status} == 200;
    is(h(post($prefix, $sid), 'X-Session-Status'), 'valid', "$sid is live");
}

sub status_of { return decode_json($n->request('GET', '/status')->{body}) }

# Nginx's 404 for $sid, exactly as the gate sends it for an unknown id.
sub is_nginx_404 {
    my ($res, $sid, $request_id, $what) = @_;
    is($res->{status}, 404, "$what: 404");
    like($res->{raw}, qr{\AHTTP/1\.1 404 Not Found\r\n}, "$what: nginx's status line, not the backend's");
    is(h($res, 'Content-Type'), 'application/json', "$what: application/json");
    my $doc = eval { decode_json($res->{body}) } // {};
    is($doc->{error}{code}, -32001, "$what: code -32001");
    is($doc->{error}{data}{error}, 'session_expired', "$what: the re-initialize body");
    like($doc->{error}{message} // '', qr/\Q`$sid`\E/, "$what: names the presented id");
    is(JSON::PP->new->canonical->encode([$doc->{id}]), "[$request_id]", "$what: the request's id");
    is(h($res, 'Content-Length'), length($res->{body}), "$what: Content-Length of our body");
    ok(!exists $res->{headers}{'mcp-session-id'}, "$what: no Mcp-Session-Id");
    ok(!exists $res->{headers}{etag}, "$what: no ETag of the backend's answer");
    ok(!exists $res->{headers}{'cache-control'} && !exists $res->{headers}{expires},
       "$what: no Cache-Control or Expires of the backend's answer");
}

sub is_gone {
    my ($sid, $what, $prefix) = @_;
    my $res = post($prefix // '/mcp', $sid);
    is($res->{status}, 404, "$what: the next request gets 404");
    is(h($res, 'X-Session-Status'), 'unknown', "$what: ... from nginx, the backend never asked");
}

sub is_kept {
    my ($sid, $what, $prefix) = @_;
    is(h(post($prefix // '/mcp', $sid), 'X-Session-Status'), 'valid', "$what: the session stays");
}

# 1. Learn mode: server-everything's 400 becomes nginx's 404.
learn('s-everything');
my $lost = post('/mcp?answer=lost400', 's-everything');
is_nginx_404($lost, 's-everything', 5, 'backend 400 No valid session ID');
is(h($lost, 'X-Session-Status'), 'valid', 'the request itself named a live session');
is_gone('s-everything', 'after the 400');

# 2. A 400 about parameters or the protocol version passes through, byte for byte.
learn('s-params');
my $params = post('/mcp?answer=params400', 's-params');
is($params->{status}, 400, 'invalid params: 400 passes');
is($params->{body}, $params_400, 'invalid params: the backend body, byte for byte');
is(h($params, 'ETag'), '"e1"', "invalid params: the backend's headers");
is(h($params, 'Mcp-Session-Id'), 'backend-side', 'learn mode passes the backend id header');
my $version = post('/mcp?answer=version400', 's-params');
is($version->{status}, 400, 'unsupported version: 400 passes');
is($version->{body}, $version_400, 'unsupported version: byte for byte');
is_kept('s-params', 'after two plain 400s');

# 3. A backend 404 JSON-RPC error becomes nginx's 404; an HTML 404 passes.
learn('s-404');
my $html = post('/mcp/other', 's-404');
is($html->{status}, 404, 'an HTML 404 passes');
is($html->{body}, $html_404, 'an HTML 404: byte for byte');
is_kept('s-404', 'after an HTML 404');
is_nginx_404(post('/mcp?answer=lost404', 's-404'), 's-404', 5, 'backend 404 Session not found');
is_gone('s-404', 'after the 404');

# 4. A 400 too big to be a session error passes intact (Content-Length known).
learn('s-big');
my $big = post('/mcp/big', 's-big');
is($big->{status}, 400, 'big 400 passes');
is($big->{body}, $big_400, 'big 400: intact');
is_kept('s-big', 'after a big 400');

# 5. Chunked answers, in pieces: judged across body filter calls.
learn('c-lost', '/cmcp');
is_nginx_404(post('/cmcp/chunked/lost400', 'c-lost'), 'c-lost', 'null', 'chunked 400 No valid session ID');
is_gone('c-lost', 'after the chunked 400', '/cmcp');
learn('c-params', '/cmcp');
my $cparams = post('/cmcp/chunked/params400', 'c-params');
is($cparams->{status}, 400, 'chunked invalid params: 400');
is($cparams->{body}, $params_400, 'chunked invalid params: byte for byte');
my $cbig = post('/cmcp/chunked/big400', 'c-params');
is($cbig->{status}, 400, 'chunked big 400: passes');
is($cbig->{body}, $big_400, 'chunked big 400: intact (given up past the limit)');
is_kept('c-params', 'after chunked plain and big 400s', '/cmcp');
learn('c-404', '/cmcp');
is_nginx_404(post('/cmcp/chunked/lost404', 'c-404'), 'c-404', 'null', 'chunked 404 JSON-RPC');

# 6. Issue mode: the client's nginx id is the one named, and it ends.
my $init = post('/imcp', undef, $initialize);
is($init->{status}, 200, 'issue mode: initialize');
my $issued = h($init, 'Mcp-Session-Id');
like($issued, qr/^[0-9a-f-]{36}$/, "issue mode: nginx's id");
my $iparams = post('/imcp?answer=params400', $issued);
is($iparams->{body}, $params_400, 'issue mode: invalid params passes byte for byte');
is_deeply($iparams->{headers}{'mcp-session-id'}, [$issued], "issue mode: nginx's id in place of the backend's");
is_kept($issued, 'issue mode: after invalid params', '/imcp');
is_nginx_404(post('/imcp?answer=lost400', $issued), $issued, 5, 'issue mode: backend 400 No valid session ID');
is_gone($issued, 'issue mode: after the 400', '/imcp');

# 7. The directive: off keeps sessions on 400s (404s still end them);
#    phrases replace or extend the default rule.
learn('d-off');
my $off = post('/offmcp?answer=lost400', 'd-off');
is($off->{status}, 400, 'off: the 400 passes');
is($off->{body}, $everything_400, 'off: byte for byte');
is_kept('d-off', 'off', '/offmcp');
is_nginx_404(post('/offmcp?answer=lost404', 'd-off'), 'd-off', 'null', 'off: a 404 still ends the session');

learn('d-phrase');
my $phrase_default = post('/phrasemcp?answer=lost400', 'd-phrase');
is($phrase_default->{body}, $everything_400, 'phrases only: the default rule is off');
is_nginx_404(post('/phrasemcp?answer=gone400', 'd-phrase'), 'd-phrase', 'null', 'phrases only: the phrase matches');
is_gone('d-phrase', 'phrases only');

learn('d-both');
is(post('/bothmcp?answer=params400', 'd-both')->{status}, 400, 'default + phrase: invalid params passes');
is_nginx_404(post('/bothmcp?answer=gone400', 'd-both'), 'd-both', 'null', 'default + phrase: the phrase');
learn('d-both2');
is_nginx_404(post('/bothmcp?answer=lost400', 'd-both2'), 'd-both2', 'null', 'default + phrase: the default');

# 8. HTTP/2: same answers.
sub h2 { return McpSession::Http2::h2_request($h2, @_) }
is(h2('POST', '/mcp?sid=h2-s', $initialize)->{status}, 200, 'h2: initialize');
my $h2params = h2('POST', '/mcp?answer=params400', $call, 'Mcp-Session-Id: h2-s');
is($h2params->{status}, 400, 'h2: invalid params passes');
is($h2params->{body}, $params_400, 'h2: byte for byte');
my $h2lost = h2('POST', '/mcp?answer=lost400', $call, 'Mcp-Session-Id: h2-s');
is($h2lost->{status}, 404, 'h2: backend 400 No valid session ID: 404');
is($h2lost->{headers}{'content-type'}[0], 'application/json', 'h2: application/json');
is(eval { decode_json($h2lost->{body})->{error}{code} }, -32001, "h2: nginx's body");
ok(!exists $h2lost->{headers}{'mcp-session-id'}, 'h2: no Mcp-Session-Id');
my $h2after = h2('POST', '/mcp', undef, 'Mcp-Session-Id: h2-s');
is($h2after->{status}, 404, 'h2: the next request gets 404');
is($h2after->{headers}{'x-session-status'}[0], 'unknown', 'h2: ... from nginx');
is(h2('POST', '/cmcp?sid=h2-c', $initialize)->{status}, 200, 'h2: initialize (chunked backend)');
my $h2chunked = h2('POST', '/cmcp/chunked/lost400', $call, 'Mcp-Session-Id: h2-c');
is($h2chunked->{status}, 404, 'h2: chunked 400 No valid session ID: 404');
is(eval { decode_json($h2chunked->{body})->{error}{code} }, -32001, "h2: chunked: nginx's body");
is(h2('POST', '/cmcp?sid=h2-b', $initialize)->{status}, 200, 'h2: initialize (big answer)');
my $h2big = h2('POST', '/cmcp/chunked/big400', $call, 'Mcp-Session-Id: h2-b');
is($h2big->{status}, 400, 'h2: chunked big 400 passes');
is($h2big->{body}, $big_400, 'h2: chunked big 400 intact');
is(h2('POST', '/cmcp', $call, 'Mcp-Session-Id: h2-b')->{headers}{'x-session-status'}[0], 'valid', 'h2: the session stays');

# 9. Counted: every session ended above, in JSON and Prometheus.
my $lost_count = 11;  # s-everything s-404 c-lost c-404 issued d-off d-phrase d-both d-both2 h2-s h2-c
is(poll_until(5, sub { status_of()->{counters}{sessions_backend_lost} == $lost_count }) ? 1 : 0, 1,
    "sessions_backend_lost counts the $lost_count sessions the backend lost");
is(status_of()->{counters}{sessions_replica_lost}, 0, 'sessions_replica_lost is exported');
my $prom = $n->request('GET', '/status?format=prometheus')->{body};
like($prom, qr/^mcp_session_sessions_backend_lost_total\{zone="mcp"\} $lost_count$/m, 'Prometheus: backend lost');
like($prom, qr/^# HELP mcp_session_sessions_replica_lost_total /m, 'Prometheus: replica lost');
my ($own) = $prom =~ /^mcp_session_own_answers_total\{zone="mcp",reason="session_not_found"\} (\d+)$/m;
cmp_ok($own // 0, '>=', $lost_count, "nginx's 404s in place of the backend's count as its own answers");

# The backend's error in an answer nginx replaced is not counted as a
# backend JSON-RPC error (the client never got it); one passed on is.
sub rpc_errors {
    my ($class) = @_;
    my $scrape = $n->request('GET', '/status?format=prometheus')->{body};
    my $total = 0;
    $total += $1 while $scrape =~ /^mcp_session_jsonrpc_errors_total\{zone="mcp",method="[^"]*",class="$class"\} (\d+)$/mg;
    return $total;
}
my ($server_errors, $params_errors) = (rpc_errors('server_error'), rpc_errors('invalid_params'));
learn('count-1');
learn('count-2');
is_nginx_404(post('/mcp?answer=lost400', 'count-1'), 'count-1', '5', 'a replaced answer');
is(post('/mcp?answer=params400', 'count-2')->{status}, 400, 'an invalid-params answer passed on');
ok(poll_until(5, sub { rpc_errors('invalid_params') == $params_errors + 1 }),
   'the passed-on error is counted as a backend JSON-RPC error');
is(rpc_errors('server_error'), $server_errors, "the replaced one is not (nor nginx's own 404)");
unlike($n->error_log, qr/\[(?:alert|crit|emerg)\]|header already sent/, 'no alerts');

$n->stop;
kill 'TERM', $backend_pid;
waitpid($backend_pid, 0);
done_testing();
