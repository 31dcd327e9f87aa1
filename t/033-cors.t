# CORS on nginx's own answers, for browser clients: for one allowed
# Origin, the answers nginx makes itself (404 for a dead session, 400,
# 406, the stream's 200) carry Access-Control-Allow-Origin (that origin),
# Vary: Origin and Access-Control-Expose-Headers; proxied answers keep the
# backend's CORS exactly (never a second Access-Control-Allow-Origin);
# OPTIONS preflights reach the backend; `mcp_session_cors off` turns it
# off. HTTP/1.1 and HTTP/2, two workers.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Http2 qw(h2_request);
use Test::More;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
my $page = 'http://127.0.0.1:5173';
my $h2 = free_port();

my $locations = <<'LOC';
    location /mcp {
        mcp_session zone=mcp;
        mcp_session_stream on;
        mcp_session_heartbeat off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
LOC
my $n = start_nginx(
    workers     => 2,
    http_config => <<"CONF",
mcp_session_zone zone=mcp:1m;
# The README's recipe: CORS on proxied answers only (no upstream: empty, not added).
map \$upstream_status \$backend_cors_origin { "" ""; default \$http_origin; }
map \$upstream_status \$backend_cors_expose { "" ""; default "Mcp-Session-Id, MCP-Protocol-Version"; }
server {
    listen 127.0.0.1:$h2 http2;
$locations
    location /backend {
        if (\$request_method = OPTIONS) {
            add_header Access-Control-Allow-Origin * always;
            add_header Access-Control-Allow-Methods "GET, POST, DELETE" always;
            return 204;
        }
        add_header Mcp-Session-Id \$arg_sid;
        add_header Access-Control-Allow-Origin *;
        return 200 "ok\\n";
    }
}
CONF
    config => <<'CONF');
    location /mcp {
        mcp_session zone=mcp;
        mcp_session_stream on;
        mcp_session_heartbeat off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /plain-backend {
        mcp_session zone=mcp;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/nocors;
    }
    location /nocors { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
    # The README's recipe for a backend without CORS.
    location /recipe {
        mcp_session zone=mcp;
        mcp_session_stream on;
        mcp_session_heartbeat off;
        if ($request_method = OPTIONS) {
            add_header Access-Control-Allow-Origin $http_origin always;
            add_header Access-Control-Allow-Methods "GET, POST, DELETE" always;
            add_header Access-Control-Allow-Headers "Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Authorization" always;
            add_header Access-Control-Max-Age 600 always;
            return 204;
        }
        add_header Access-Control-Allow-Origin $backend_cors_origin;
        add_header Access-Control-Expose-Headers $backend_cors_expose;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/nocors;
    }
    location /quiet {
        mcp_session zone=mcp;
        mcp_session_cors off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        if ($request_method = OPTIONS) {
            add_header Access-Control-Allow-Origin * always;
            add_header Access-Control-Allow-Methods "GET, POST, DELETE" always;
            add_header X-Answered-By backend always;
            return 204;
        }
        add_header Mcp-Session-Id $arg_sid;
        add_header Access-Control-Allow-Origin *;
        return 200 "ok\n";
    }
CONF

sub all_of { my ($res, $name) = @_; return @{ $res->{headers}{lc $name} // [] } }
sub one { my ($res, $name) = @_; return join(' | ', all_of($res, $name)) }

sub cors_ok {
    my ($res, $label) = @_;
    is(one($res, 'Access-Control-Allow-Origin'), $page, "$label: Access-Control-Allow-Origin is the page's origin");
    is(one($res, 'Vary'), 'Origin', "$label: Vary: Origin");
    is(one($res, 'Access-Control-Expose-Headers'), 'Mcp-Session-Id, MCP-Protocol-Version', "$label: the session headers are exposed");
}

sub post {
    my ($uri, @headers) = @_;
    return $n->request('POST', $uri, headers => [@headers], body => $initialize);
}

# nginx's own answers.
my $res = post('/mcp', 'Origin' => $page, 'Mcp-Session-Id' => 'gone');
is($res->{status}, 404, 'a dead session: 404');
cors_ok($res, '404');
$res = post('/mcp', 'Origin' => $page, 'MCP-Protocol-Version' => 'not-a-version', 'Mcp-Session-Id' => 'gone');
is($res->{status}, 400, 'a malformed protocol version: 400');
cors_ok($res, '400');
is(one(post('/mcp', 'Mcp-Session-Id' => 'gone'), 'Access-Control-Allow-Origin'), '', 'without Origin: no CORS headers');
$res = post('/mcp', 'Origin' => 'https://evil.example', 'Mcp-Session-Id' => 'gone');
is($res->{status}, 403, 'a foreign Origin: 403');
is(one($res, 'Access-Control-Allow-Origin'), '', 'and no CORS headers (the page must not read it)');
is(post('/quiet', 'Origin' => $page, 'Mcp-Session-Id' => 'gone')->{status}, 404, 'mcp_session_cors off: 404');
is(one(post('/quiet', 'Origin' => $page, 'Mcp-Session-Id' => 'gone'), 'Access-Control-Allow-Origin'), '', '... without CORS headers');

# Proxied answers: the backend's own CORS, once.
$res = $n->request('POST', '/mcp?sid=s-1', headers => ['Origin' => $page], body => $initialize);
is($res->{status}, 200, 'initialize through nginx');
is(one($res, 'Access-Control-Allow-Origin'), '*', "the backend's Access-Control-Allow-Origin, once and unchanged");
is(one($res, 'Vary'), '', 'nothing added to a proxied answer');
$res = $n->request('POST', '/plain-backend?sid=s-2', headers => ['Origin' => $page], body => $initialize);
is(one($res, 'Access-Control-Allow-Origin'), '', 'a backend without CORS stays without');
$res = $n->request('OPTIONS', '/mcp', headers => ['Origin' => $page, 'Access-Control-Request-Method' => 'POST',
                                                 'Access-Control-Request-Headers' => 'content-type, mcp-session-id']);
is($res->{status}, 204, 'a preflight passes to the backend');
is(one($res, 'X-Answered-By'), 'backend', '... which answers it');
is(one($res, 'Access-Control-Allow-Origin'), '*', '... with its own CORS only');

# The README's recipe for a backend without CORS: one of each header everywhere.
$res = $n->request('OPTIONS', '/recipe', headers => ['Origin' => $page, 'Access-Control-Request-Method' => 'POST']);
is($res->{status}, 204, 'recipe: nginx answers the preflight');
is(one($res, 'Access-Control-Allow-Origin'), $page, 'recipe: preflight allows the origin, once');
$res = $n->request('POST', '/recipe?sid=r-1', headers => ['Origin' => $page], body => $initialize);
is(one($res, 'Access-Control-Allow-Origin'), $page, 'recipe: a proxied answer has it once');
$res = post('/recipe', 'Origin' => $page, 'Mcp-Session-Id' => 'gone');
is($res->{status}, 404, 'recipe: 404');
is(one($res, 'Access-Control-Allow-Origin'), $page, "recipe: nginx's 404 has it once");
my $rs = open_stream($n, 'GET', '/recipe', headers => ['Mcp-Session-Id' => 'r-1', 'Accept' => 'text/event-stream', 'Origin' => $page]);
my $rhead = $rs->read_until(qr/\r\n\r\n/, 5);
is(scalar(() = $rhead =~ /\r\nAccess-Control-Allow-Origin:/gi), 1, "recipe: nginx's stream 200 has it once");
is(scalar(() = $rhead =~ /\r\nAccess-Control-Expose-Headers:/gi), 1, 'recipe: and one Expose-Headers');
$rs->close;

# The stream's 200 and 406 are nginx's.
my $s = open_stream($n, 'GET', '/mcp', headers => ['Mcp-Session-Id' => 's-1', 'Accept' => 'text/event-stream', 'Origin' => $page]);
my $head = $s->read_until(qr/\r\n\r\n/, 5);
like($head, qr{^HTTP/1.1 200}, 'the stream opens');
like($head, qr{\r\nAccess-Control-Allow-Origin: \Q$page\E\r\n}i, 'the stream carries Access-Control-Allow-Origin');
like($head, qr{\r\nAccess-Control-Expose-Headers: Mcp-Session-Id, MCP-Protocol-Version\r\n}i, '... and exposes the session headers');
$s->close;
$res = $n->request('GET', '/mcp', headers => ['Mcp-Session-Id' => 's-1', 'Accept' => 'text/event-stream;q=0', 'Origin' => $page]);
is($res->{status}, 406, 'a stream refused by Accept: 406');
cors_ok($res, '406');

# HTTP/2.
$res = h2_request($h2, 'POST', '/mcp', undef, "Origin: $page", 'Mcp-Session-Id: gone');
is($res->{status}, 404, 'HTTP/2: a dead session: 404');
cors_ok($res, 'HTTP/2 404');
$res = h2_request($h2, 'POST', '/mcp?sid=s-3', $initialize, "Origin: $page");
is(one($res, 'access-control-allow-origin'), '*', "HTTP/2: the backend's CORS once and unchanged");

unlike($n->error_log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit|emerg)\]/, 'no crash or alert');
$n->stop;
done_testing();
