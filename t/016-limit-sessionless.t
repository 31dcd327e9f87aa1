# The README's per-client limit on session creation: limit_req keyed on
# the client address for requests without Mcp-Session-Id only (an empty
# key is never limited). A client beyond the burst gets 429 for new
# sessions, while requests of its existing sessions pass; the limit zone is
# shared, so it holds across both workers.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';

my $n = start_nginx(
    workers     => 2,
    log_level   => 'notice',
    http_config => <<'HTTP',
mcp_session_zone zone=mcp:1m;
map $http_mcp_session_id $mcp_sessionless_client {
    ""      $binary_remote_addr;
    default "";
}
limit_req_zone $mcp_sessionless_client zone=mcp_new_sessions:1m rate=1r/m;
HTTP
    config => <<'CONF');
location /mcp {
    limit_req zone=mcp_new_sessions burst=5 nodelay;
    limit_req_status 429;
    mcp_session zone=mcp;
    mcp_session_mode issue;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id backend-1; return 200 "ok\n"; }
CONF

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

my (%status, %pids, $sid);
for (1 .. 20) {
    my $res = $n->request('POST', '/mcp', body => $initialize);
    $status{ $res->{status} }++;
    $pids{ h($res, 'X-Pid') }++;
    $sid //= h($res, 'Mcp-Session-Id') if $res->{status} == 200;
}
is($status{200}, 6, 'one initialize and the burst of 5 made sessions');
is($status{429}, 14, 'the other 14 sessionless requests got 429');
is(scalar(keys %pids), 2, 'both workers answered (the limit is shared)');

my $ok = 0;
for (1 .. 20) {
    my $res = $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid],
        body => '{"jsonrpc":"2.0","id":2,"method":"tools/list"}');
    $ok++ if $res->{status} == 200;
}
is($ok, 20, 'requests of an existing session are not limited');
is($n->request('POST', '/mcp', body => $initialize)->{status}, 429, 'new sessions are still refused');
like($n->error_log, qr/limiting requests, excess: .* by zone "mcp_new_sessions"/, 'nginx logs the refusals');
$n->stop;
done_testing();
