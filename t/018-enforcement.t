# Session rules run after nginx's access control and hold whatever the
# client claims: allow/deny, auth_basic, auth_request (+ satisfy any) decide
# first; principals from auth_request_set bind in both modes; a modern
# MCP-Protocol-Version never switches validation off; bindings belong to the
# session, not the location; issue mode never shows or learns a backend id.
# Two workers throughout: the zone is shared.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);

my $uuid_v7 = qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';

my $files = tempdir(CLEANUP => 1);
my $htpasswd = htpasswd_file($files, carol => 'secret');

my $backend = 'proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT';
my $locations = <<"CONF";
# The README's auth_request recipe, learn and issue mode.
location /mcp {
    auth_request /auth;
    auth_request_set \$jwt_sub \$upstream_http_x_jwt_sub;
    mcp_session zone=mcp;
    mcp_session_principal \$jwt_sub;
    add_header X-Session-Status \$mcp_session_status always;
    $backend/backend;
}
location /mcp-distinct {
    auth_request /auth;
    auth_request_set \$jwt_sub \$upstream_http_x_jwt_sub;
    mcp_session zone=mcp;
    mcp_session_principal \$jwt_sub;
    mcp_session_distinct_binding_errors on;
    $backend/backend;
}
location /imcp {
    auth_request /auth;
    auth_request_set \$jwt_sub \$upstream_http_x_jwt_sub;
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_principal \$jwt_sub;
    add_header X-Session-Status \$mcp_session_status always;
    $backend/ibackend;
}
location = /auth { internal; $backend/authsvc; proxy_pass_request_body off; proxy_set_header Content-Length ""; }
location = /authsvc {
    if (\$sub = "") { return 401; }
    add_header X-Jwt-Sub \$sub;
    return 200;
}

# Access control in front of sessions.
location /open { mcp_session zone=mcp; add_header X-Session-Status \$mcp_session_status always; $backend/backend; }
location /denied { deny all; mcp_session zone=mcp; $backend/backend; }
location /idenied { deny all; mcp_session zone=mcp; mcp_session_mode issue; $backend/ibackend; }
location /basic {
    auth_basic "mcp"; auth_basic_user_file $htpasswd;
    mcp_session zone=mcp;
    $backend/backend;
}
location /any {
    satisfy any; allow 127.0.0.1; deny all;
    auth_basic "mcp"; auth_basic_user_file $htpasswd;
    mcp_session zone=mcp;
    add_header X-Session-Status \$mcp_session_status always;
    $backend/backend;
}

# Bindings across locations of one zone.
location /team { mcp_session zone=mcp; mcp_session_principal \$http_x_team; add_header X-Session-Status \$mcp_session_status always; $backend/backend; }
location /teamless { mcp_session zone=mcp; mcp_session_stream on; mcp_session_heartbeat off; $backend/backend; }

# Issue mode around internal redirects and odd backend answers.
location /retry {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    proxy_intercept_errors on;
    error_page 503 = \@retry;
    $backend/ibackend;
}
location \@retry {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    rewrite ^ /ibackend-retry break;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT;
}
location /dup { mcp_session zone=mcp; mcp_session_mode issue; $backend/ibackend-dup; }
location /open-issue { mcp_session zone=mcp; mcp_session_mode issue; $backend/ibackend; }

location /backend {
    add_header Mcp-Session-Id \$arg_sid;
    add_header X-Backend-Saw "[\$http_mcp_session_id] \$request_method";
    return 200 "ok\\n";
}
location /ibackend {
    if (\$arg_busy) { return 503; }
    add_header Mcp-Session-Id backend-7;
    add_header X-Backend-Saw "[\$http_mcp_session_id]";
    return 200 "ok\\n";
}
location = /ibackend-retry { add_header Mcp-Session-Id backend-7; add_header X-Backend-Saw "[\$http_mcp_session_id]"; return 200 "retried\\n"; }
location /ibackend-dup { add_header Mcp-Session-Id backend-7; add_header Mcp-Session-Id backend-8; add_header X-Backend-Saw yes; return 200 "dup\\n"; }
location = /status { mcp_session_status zone=mcp; }
CONF

my $http = <<'CONF';
mcp_session_zone zone=mcp:1m;
map $http_authorization $sub { "Bearer alice-token" alice; "Bearer bob-token" bob; default ""; }
CONF

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }
sub all_h { my ($res, $name) = @_; return @{ $res->{headers}{lc $name} // [] } }
sub post { my ($n, $uri, $body, @headers) = @_; return $n->request('POST', $uri, headers => [@headers], body => $body) }
sub counters { my ($n) = @_; return decode_json($n->request('GET', '/status')->{body}) }

my $n = start_nginx(workers => 2, log_level => 'info', http_config => $http, config => $locations);
my @alice = (Authorization => 'Bearer alice-token');
my @bob = (Authorization => 'Bearer bob-token');

# ---- auth_request principal recipe, learn mode
is(post($n, '/mcp?sid=s-alice', $initialize, @alice)->{status}, 200, 'learn: alice initializes through auth_request');
my $own = post($n, '/mcp', '{}', @alice, 'Mcp-Session-Id' => 's-alice');
is($own->{status}, 200, 'learn: the owner is served (the principal is bound after auth_request ran)');
is(h($own, 'X-Session-Status'), 'valid', 'learn: ... as a valid session');
my $theft = post($n, '/mcp', '{}', @bob, 'Mcp-Session-Id' => 's-alice');
is($theft->{status}, 404, 'learn: bob with alice\'s id gets the unknown-id 404');
like($theft->{body}, qr/"error":"session_expired"/, 'learn: ... with the same body as an unknown id');
is(post($n, '/mcp-distinct', '{}', @bob, 'Mcp-Session-Id' => 's-alice')->{status}, 401,
    'learn: with mcp_session_distinct_binding_errors on, another principal gets 401');
is(post($n, '/mcp-distinct', '{}', @alice, 'Mcp-Session-Id' => 's-alice')->{status}, 200, 'learn: ... and the owner 200');
my $anon = post($n, '/mcp', '{}', 'Mcp-Session-Id' => 's-alice');
is($anon->{status}, 401, 'learn: no token: auth_request\'s 401 comes first');
unlike($anon->{body}, qr/session/, 'learn: ... and says nothing about the session');
is(post($n, '/mcp', '{}', 'Mcp-Session-Id' => 'no-such-id')->{status}, 401, 'learn: no token, unknown id: 401, not 404');

# ---- auth_request principal recipe, issue mode
my $iinit = post($n, '/imcp', $initialize, @alice);
is($iinit->{status}, 200, 'issue: alice initializes');
my $isid = h($iinit, 'Mcp-Session-Id');
like($isid, $uuid_v7, 'issue: ... and gets nginx\'s id');
is(post($n, '/imcp', '{}', @alice, 'Mcp-Session-Id' => $isid)->{status}, 200, 'issue: the owner is served');
my $itheft = post($n, '/imcp', '{}', @bob, 'Mcp-Session-Id' => $isid);
is($itheft->{status}, 404, 'issue: bob with alice\'s id gets 404 (the session was bound to alice, not to "")');
is(h($itheft, 'X-Backend-Saw'), '', 'issue: ... and the backend never saw it');
is(post($n, '/imcp', $initialize)->{status}, 401, 'issue: an unauthenticated initialize is refused by auth_request');

# ---- allow/deny, auth_basic, satisfy any
is(post($n, '/open?sid=s-open', $initialize)->{status}, 200, 'a session through an open location');
my $before = counters($n);
my $denied = post($n, '/denied', '{}', 'Mcp-Session-Id' => 'no-such-id');
is($denied->{status}, 403, 'deny all + unknown id: 403, not 404');
is(post($n, '/denied', '{}', 'Mcp-Session-Id' => 's-open')->{status}, 403, 'deny all + live id: 403');
is(post($n, '/idenied', $initialize)->{status}, 403, 'deny all + issue-mode initialize: 403');
my $after = counters($n);
is($after->{counters}{validated}, $before->{counters}{validated}, 'denied requests touched no session');
is($after->{counters}{rejected_unknown}, $before->{counters}{rejected_unknown}, 'denied requests probed no id');
is($after->{sessions}, $before->{sessions}, 'a denied initialize made no session');

my $basic = post($n, '/basic', '{}', 'Mcp-Session-Id' => 'no-such-id');
is($basic->{status}, 401, 'auth_basic without credentials + unknown id: 401');
like(h($basic, 'WWW-Authenticate'), qr/^Basic realm="mcp"/, 'auth_basic: ... with its challenge');
my @carol = (Authorization => 'Basic Y2Fyb2w6c2VjcmV0');  # carol:secret
is(post($n, '/basic', '{}', @carol, 'Mcp-Session-Id' => 'no-such-id')->{status}, 404,
    'auth_basic with credentials + unknown id: the session rules then apply (404)');
is(post($n, '/basic', '{}', @carol, 'Mcp-Session-Id' => 's-open')->{status}, 200, 'auth_basic with credentials + live id: 200');
my $any = post($n, '/any', '{}', 'Mcp-Session-Id' => 'no-such-id');
is($any->{status}, 404, 'satisfy any, allowed by address: session rules still apply (404)');
is(h(post($n, '/any', '{}', 'Mcp-Session-Id' => 's-open'), 'X-Session-Status'), 'valid', 'satisfy any: live id valid');

# ---- a modern MCP-Protocol-Version never switches enforcement off
is(post($n, '/team?sid=s-team', $initialize, 'X-Team' => 'team-a')->{status}, 200, 'team-a makes a bound session');
for my $version ('2026-07-28', '9999-12-31') {
    my $res = post($n, '/team', '{}', 'X-Team' => 'team-b', 'Mcp-Session-Id' => 's-team', 'MCP-Protocol-Version' => $version);
    is($res->{status}, 404, "team-b with team-a's id and MCP-Protocol-Version $version: 404");
    is(h($res, 'X-Backend-Saw'), '', "... ($version) the backend never saw it");
}
my $guess = $n->request('DELETE', '/open', headers => ['Mcp-Session-Id' => 'guessed-backend-id', 'MCP-Protocol-Version' => '2026-07-28']);
is($guess->{status}, 404, 'a modern-header DELETE of a guessed id is validated: 404');
is(h($guess, 'X-Backend-Saw'), '', '... and never reaches the backend');
my $modern_init = post($n, '/open?sid=s-modern', $initialize, 'MCP-Protocol-Version' => '2026-07-28');
is($modern_init->{status}, 200, 'learn: an initialize with a modern header reaches the backend');
is(h(post($n, '/open', '{}', 'Mcp-Session-Id' => 's-modern'), 'X-Session-Status'), 'valid',
    'learn: ... and the id it answered is tracked (no 404 loop)');

# ---- bindings belong to the session
is(post($n, '/teamless', '{}', 'Mcp-Session-Id' => 's-team')->{status}, 404,
    'a bound session through a location that configures no binding: 404 (fails closed)');
my $stolen = $n->request('GET', '/teamless', headers => ['Mcp-Session-Id' => 's-team', 'Accept' => 'text/event-stream']);
is($stolen->{status}, 404, '... nor can its stream be taken over there');
is(post($n, '/teamless', '{}', 'Mcp-Session-Id' => 's-open')->{status}, 200, 'an unbound session works there');
is(post($n, '/team', '{}', 'X-Team' => 'team-a', 'Mcp-Session-Id' => 's-team')->{status}, 200, 'the owner still works');

# ---- issue mode: no backend id reaches a client
my $r1 = post($n, '/retry', $initialize);
my $rsid = h($r1, 'Mcp-Session-Id');
like($rsid, $uuid_v7, 'issue: a session for the redirect tests');
my $retried = post($n, '/retry?busy=1', '{}', 'Mcp-Session-Id' => $rsid);
is($retried->{status}, 200, 'error_page 503 = @retry: the retry is served');
is($retried->{body}, "retried\n", '... by the retry backend');
is(h($retried, 'X-Backend-Saw'), '[backend-7]', '... which saw the backend id');
is(join(',', all_h($retried, 'Mcp-Session-Id')), $rsid, '... while the client sees only nginx\'s id');
my $dup = post($n, '/dup', '{}', 'Mcp-Session-Id' => $isid, @alice);
# The /dup location binds no principal: alice's bound session fails closed there.
is($dup->{status}, 404, 'a principal-bound session in a location without binding: 404');
my $dsid = h(post($n, '/retry', $initialize), 'Mcp-Session-Id');
my $dups = post($n, '/dup', '{}', 'Mcp-Session-Id' => $dsid);
is($dups->{status}, 200, 'two Mcp-Session-Id headers from the backend: answered');
is(join(',', all_h($dups, 'Mcp-Session-Id')), $dsid, '... the client sees exactly one, nginx\'s');
my $dupinit = post($n, '/dup', $initialize);
is(scalar(all_h($dupinit, 'Mcp-Session-Id')), 0, 'an initialize answered with two backend ids: no id shown, no session');
like($n->error_log, qr/answered initialize with 2 Mcp-Session-Id headers; no session made/, '... and logged');

# Bodies another JSON parser would take as an initialize.
my %differential = (
    'lone surrogate' => '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"\ud800"}}',
    'raw 0xff byte'  => qq({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"\xff"}}),
    'deep nesting'   => '{"jsonrpc":"2.0","id":1,"method":"initialize","params":' . ('[' x 200) . (']' x 200) . '}',
    'NaN'            => '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":NaN}}',
    'overflow'       => '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":1e400}}',
    'huge prefix'    => '{"jsonrpc":"2.0","params":{"pad":"' . ('p' x 100000) . '"},"id":1,"method":"initialize"}',
);
for my $name (sort keys %differential) {
    my $res = post($n, '/open-issue', $differential{$name});
    my @ids = all_h($res, 'Mcp-Session-Id');
    ok(!grep({ $_ eq 'backend-7' } @ids), "issue mode, $name: no backend id reaches the client");
    if ($res->{status} == 200) {
        like($ids[0] // '', $uuid_v7, "issue mode, $name: accepted as an initialize: nginx's id");
    } else {
        is($res->{status}, 400, "issue mode, $name: refused with 400");
        is(h($res, 'X-Backend-Saw'), '', "issue mode, $name: ... before the backend");
    }
}
my $learned = counters($n)->{counters}{created};
post($n, '/open-issue', '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"\ud800"}}');
is(counters($n)->{counters}{created}, $learned, 'issue mode never learns a backend id as a session');

$n->stop;

# ---- publish and status endpoints under a server-level mcp_session
my $server_level = <<"CONF";
mcp_session zone=mcp;
mcp_session_principal \$http_x_team;
location /mcp { add_header X-Session-Status \$mcp_session_status always; $backend/backend; }
location /backend { mcp_session off; add_header Mcp-Session-Id \$arg_sid; return 200 "ok\\n"; }
location = /mcp/publish { mcp_session_publish zone=mcp; }
location = /mcp/status { mcp_session_status zone=mcp; }
CONF
my $m = start_nginx(workers => 2, log_level => 'info', http_config => 'mcp_session_zone zone=mcp:1m;', config => $server_level);
is(post($m, '/mcp?sid=s-pub', $initialize, 'X-Team' => 'team-a')->{status}, 200, 'server level: a bound session');
my $pub = post($m, '/mcp/publish', '{"jsonrpc":"2.0","method":"notifications/message"}', 'Mcp-Session-Id' => 's-pub');
is($pub->{status}, 202, 'server level: the publish location applies no session rules (publisher has no principal)');
is($m->request('GET', '/mcp/status')->{status}, 200, 'server level: the status location answers');
$m->stop;

my $bad = McpSession::TestNginx::new_nginx(http_config => 'mcp_session_zone zone=mcp:1m;',
    config => 'location = /p { mcp_session zone=mcp; mcp_session_publish zone=mcp; }');
my ($rc, $out) = $bad->check_config;
isnt($rc, 0, 'nginx -t fails');
like($out, qr/\[emerg\].*"mcp_session" cannot be used in a location with mcp_session_publish or mcp_session_status in \S+nginx\.conf:\d+/,
    'nginx -t: mcp_session next to mcp_session_publish is a configuration error');

done_testing();
