# Issue mode end to end with two workers: nginx makes UUIDv7 ids, the
# backend only ever sees its own, clients only ever see nginx's.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;

my $uuid_v7 = qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    add_header X-Session-Status $mcp_session_status always;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend {
    if ($arg_fail) { return 500 "initialize failed\n"; }
    add_header Mcp-Session-Id backend-7;
    add_header X-Backend-Saw "[$http_mcp_session_id] $request_method $http_content_length";
    return 200 "ok\n";
}
location /stateless { mcp_session zone=mcp; mcp_session_mode issue; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plain; }
location /plain { add_header X-Backend-Saw "[$http_mcp_session_id]"; return 200 "plain\n"; }
CONF

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

sub post {
    my ($n, $uri, $body, @headers) = @_;
    return $n->request('POST', $uri, headers => [@headers], body => $body);
}

my $n = start_nginx(workers => 2, log_level => 'info', http_config => 'mcp_session_zone zone=mcp:1m;', config => $locations);

my $init = post($n, '/mcp', $initialize);
is($init->{status}, 200, 'initialize answered');
my $sid = h($init, 'Mcp-Session-Id');
like($sid, $uuid_v7, 'the client gets a UUIDv7 made by nginx');
isnt($sid, 'backend-7', "the backend's own id stays hidden");
is(h($init, 'X-Session-Status'), 'new', 'status new');
is(h($init, 'X-Backend-Saw'), '[] POST ' . length($initialize), 'the backend got the initialize body, with no session id');

my %pids;
for my $i (1 .. 40) {
    my $res = post($n, '/mcp', '{"jsonrpc":"2.0","id":2,"method":"tools/list"}', 'Mcp-Session-Id' => $sid);
    die "request $i: $res->{status}" if $res->{status} != 200;
    $pids{ h($res, 'X-Pid') }++;
    if ($i == 1) {
        is(h($res, 'X-Backend-Saw'), '[backend-7] POST 46', "the backend sees its own id");
        is(h($res, 'Mcp-Session-Id'), $sid, "the backend's id in the answer is rewritten to nginx's");
        is(h($res, 'X-Session-Status'), 'valid', 'status valid');
    }
}
is(scalar(keys %pids), 2, 'both workers mapped the session (shared zone)');

my $del = $n->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $sid]);
is($del->{status}, 200, 'DELETE forwarded');
is(h($del, 'X-Backend-Saw'), '[backend-7] DELETE', 'DELETE carries the backend id');
my $after = post($n, '/mcp', '{"jsonrpc":"2.0","id":3,"method":"tools/list"}', 'Mcp-Session-Id' => $sid);
is($after->{status}, 404, 'the ended session gets nginx 404');
like($after->{body}, qr/^\{"jsonrpc":"2.0","id":null,/, '... (a request with a session id is not read: id null)');

# Batches and bodies large enough to land in a temp file are inspected too.
my $batch = post($n, '/mcp', '[{"jsonrpc":"2.0","method":"notifications/x"},' . $initialize . ']');
like(h($batch, 'Mcp-Session-Id'), $uuid_v7, 'an initialize inside a batch gets a session');
my $big = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"pad":"' . ('p' x 100000) . '"}}';
my $large = post($n, '/mcp', $big);
like(h($large, 'Mcp-Session-Id'), $uuid_v7, 'a 100 KB initialize (temp file) gets a session');
is(h($large, 'X-Backend-Saw'), '[] POST ' . length($big), 'and reaches the backend whole');

# A failed initialize leaves no session behind and shows no id.
my $failed = post($n, '/mcp?fail=1', $initialize);
is($failed->{status}, 500, 'backend refused the initialize');
ok(!exists $failed->{headers}{'mcp-session-id'}, 'no session id for a failed initialize');
is(h($failed, 'X-Session-Status'), 'none', 'and no session');

# A stateless backend: nginx's session works on its own.
my $stateless = post($n, '/stateless', $initialize);
my $own = h($stateless, 'Mcp-Session-Id');
like($own, $uuid_v7, 'a stateless backend still gets its clients a session');
my $use = post($n, '/stateless', '{"jsonrpc":"2.0","id":5,"method":"tools/list"}', 'Mcp-Session-Id' => $own);
is($use->{status}, 200, 'and it validates');
is(post($n, '/stateless', '{}', 'Mcp-Session-Id' => 'made-up')->{status}, 404, 'made-up ids are still refused');

unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'clean error log');
$n->stop;

# Principal binding is captured when nginx makes the session.
my $bound = start_nginx(
    workers     => 2,
    log_level   => 'info',
    http_config => 'mcp_session_zone zone=mcp:1m;',
    config      => "mcp_session_principal \$http_x_user;\n$locations",
);
my $alice = post($bound, '/mcp', $initialize, 'X-User' => 'alice');
my $alice_sid = h($alice, 'Mcp-Session-Id');
is(post($bound, '/mcp', '{"id":9}', 'Mcp-Session-Id' => $alice_sid, 'X-User' => 'bob')->{status}, 404,
    'issue mode: another principal gets 404, as for an unknown id');
is(post($bound, '/mcp', '{"id":9}', 'Mcp-Session-Id' => $alice_sid, 'X-User' => 'alice')->{status}, 200,
    'issue mode: the owner continues');
unlike($bound->error_log, qr/alice|bob/, 'issue mode: principals never reach the log');
$bound->stop;

done_testing();
