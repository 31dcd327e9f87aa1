# The session gate and the answer filters over HTTP/2 (h2c, prior
# knowledge, curl), next to auth_basic, error_page and the stream, with two
# workers: HTTP/2 requests and their header lists are built differently
# (pseudo-headers, HPACK, one connection for many streams), and the
# module must judge them exactly as it judges HTTP/1.1.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http2;
use Test::More;
use File::Temp qw(tempdir);

my $uuid_v7 = qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';

my $h2 = free_port();
my $files = tempdir(CLEANUP => 1);
my $htpasswd = htpasswd_file($files, carol => 'secret');

my $backend = 'proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT';
my $http = <<"CONF";
mcp_session_zone zone=mcp:1m;
server {
    listen 127.0.0.1:$h2 http2;
    location /mcp {
        mcp_session zone=mcp;
        mcp_session_stream on;
        mcp_session_heartbeat off;
        add_header X-Session-Status \$mcp_session_status always;
        $backend/backend;
    }
    location /imcp {
        mcp_session zone=mcp;
        mcp_session_mode issue;
        proxy_intercept_errors on;
        error_page 503 = \@retry;
        add_header X-Session-Status \$mcp_session_status always;
        $backend/ibackend;
    }
    location \@retry { mcp_session zone=mcp; mcp_session_mode issue; rewrite ^ /ibackend-retry break; proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT; }
    location /basic { auth_basic "mcp"; auth_basic_user_file $htpasswd; mcp_session zone=mcp; $backend/backend; }
    location = /publish { mcp_session_publish zone=mcp; }
}
CONF
my $locations = <<'CONF';
location /backend {
    default_type application/json;
    if ($arg_forget) { return 404 '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}'; }
    add_header Mcp-Session-Id $arg_sid;
    return 200 "ok\n";
}
location /ibackend { if ($arg_busy) { return 503; } add_header Mcp-Session-Id backend-7; add_header Mcp-Session-Id backend-8; return 200 "ok\n"; }
location = /ibackend-retry { add_header Mcp-Session-Id backend-7; return 200 "retried\n"; }
CONF

sub h2_request { return McpSession::Http2::h2_request($h2, @_) }
sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

my $n = start_nginx(workers => 2, log_level => 'info', http_config => $http, config => $locations);

my $unknown = h2_request('POST', '/mcp', undef, 'Mcp-Session-Id: no-such-id');
is($unknown->{version}, 'HTTP/2', 'the exchange is HTTP/2');
is($unknown->{status}, 404, 'h2: unknown id: 404');
like($unknown->{body}, qr/"error":"session_expired"/, 'h2: ... with the re-initialize body');

is(h2_request('POST', '/mcp?sid=h2-s', $initialize)->{status}, 200, 'h2: initialize');
is(h(h2_request('POST', '/mcp', '{}', 'Mcp-Session-Id: h2-s'), 'X-Session-Status'), 'valid', 'h2: the learned session is valid');
is(h2_request('POST', '/mcp', '{}', 'Mcp-Session-Id: h2-s', 'MCP-Protocol-Version: 2026-07-28')->{status}, 200,
    'h2: a modern header with a live session: validated and served');
is(h2_request('POST', '/mcp', undef, 'Mcp-Session-Id: nope', 'MCP-Protocol-Version: 2026-07-28')->{status}, 404,
    'h2: a modern header does not make an unknown id pass');
is(h2_request('POST', '/mcp', undef, 'Mcp-Session-Id: a', 'Mcp-Session-Id: b')->{status}, 400, 'h2: two Mcp-Session-Id headers: 400');

my $basic = h2_request('POST', '/basic', undef, 'Mcp-Session-Id: no-such-id');
is($basic->{status}, 401, 'h2: auth_basic decides before the session (401, not 404)');
is(h2_request('POST', '/basic', '{}', 'Mcp-Session-Id: h2-s', 'Authorization: Basic Y2Fyb2w6c2VjcmV0')->{status}, 200,
    'h2: auth_basic with credentials + live id: 200');

my $init = h2_request('POST', '/imcp', $initialize);
my @ids = @{ $init->{headers}{'mcp-session-id'} // [] };
is(scalar(@ids), 0, 'h2 issue mode: an initialize answered with two backend ids shows none');
# The retry backend answers one id: an initialize that went through error_page.
my $one = h2_request('POST', '/imcp?busy=1', $initialize);
my $sid = h($one, 'Mcp-Session-Id');
like($sid, $uuid_v7, 'h2 issue mode: an initialize retried through error_page gets nginx\'s id');
is($one->{body}, "retried\n", 'h2: ... answered by the retry backend');
my $use = h2_request('POST', '/imcp?busy=1', '{}', "Mcp-Session-Id: $sid");
is($use->{status}, 200, 'h2 issue mode: a request redirected by error_page keeps its session');
is(join(',', @{ $use->{headers}{'mcp-session-id'} // [] }), $sid, 'h2: ... and shows only nginx\'s id');

# A stream over HTTP/2: replay, live delivery, and its end when the session ends.
h2_request('POST', '/publish', '{"jsonrpc":"2.0","method":"notifications/message","params":{"n":1}}', 'Mcp-Session-Id: h2-s');
my $out = "$files/stream.out";
my $pid = McpSession::Http2::h2_stream_to($h2, '/mcp', $out, 'Mcp-Session-Id: h2-s', 'Accept: text/event-stream');
my $slurp = sub { open my $fh, '<', $out or return ''; local $/; my $t = <$fh>; return $t // '' };
ok(poll_until(10, sub { $slurp->() =~ /"n":1/ }), 'h2 stream: the published event is replayed');
h2_request('POST', '/publish', '{"jsonrpc":"2.0","method":"notifications/message","params":{"n":2}}', 'Mcp-Session-Id: h2-s');
ok(poll_until(10, sub { $slurp->() =~ /"n":2/ }), 'h2 stream: a live event arrives (published on another connection)');
like($slurp->(), qr{^HTTP/2 200}, 'h2 stream: HTTP/2 200');
like($slurp->(), qr/content-type: text\/event-stream/i, 'h2 stream: text/event-stream');
is(h2_request('POST', '/mcp?forget=1', '{}', 'Mcp-Session-Id: h2-s')->{status}, 404, 'h2: the backend\'s JSON-RPC 404 ...');
waitpid($pid, 0);
is($? >> 8, 0, 'h2 stream: ... ends the session, and its stream ends cleanly');
is(h2_request('POST', '/mcp', undef, 'Mcp-Session-Id: h2-s')->{status}, 404, 'h2: the ended session is unknown');

unlike($n->error_log, qr/\[(alert|crit|emerg)\]|signal \d+/, 'no worker trouble');
done_testing();
