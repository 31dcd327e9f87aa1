# mcp_session_zone ... redis=: two nginx nodes (own prefixes and zones,
# 2 workers each) share sessions through a private redis-server. A session
# made on one node is valid on the other, ends everywhere, survives its
# node, and Redis trouble gives 503 + Retry-After, never a false 404.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Nginx;
use McpSession::Redis;
use McpSession::Nodes qw(start_node);
use McpSession::Http2;
use JSON::PP qw(decode_json);
use MIME::Base64 ();
use Time::HiRes qw(time);
use Test::More;

my $root = McpSession::Nginx::repo_root();
my ($redis_port, $backend_port, $a_port, $b_port, $b_h2) = map { free_port() } 1 .. 5;

my $files = "$root/t/servroot-041-files";
mkdir $files;
my $htpasswd = htpasswd_file($files, carol => 'secret');

my $redis = McpSession::Redis->new(dir => "$root/t/servroot-041-redis", port => $redis_port)->start;

# The MCP server both nodes proxy to: answers an initialize with a new id,
# anything else with the id it saw.
my $backend = McpSession::Nginx->new(
    servroot => "$root/t/servroot-041-backend", port => $backend_port, load_module => 0, log_level => 'warn',
    config   => <<'CONF');
location / {
    if ($http_mcp_session_id = "") {
        add_header Mcp-Session-Id "s-$request_id" always;
        return 200 "init\n";
    }
    add_header X-Saw "[$http_mcp_session_id]" always;
    return 200 "ok\n";
}
CONF
$backend->start;
$backend->{started_by_api} = 1;

sub node_config {
    return <<"CONF";
location /mcp { mcp_session zone=mcp; proxy_pass http://127.0.0.1:$backend_port; }
location /bound {
    mcp_session zone=mcp;
    mcp_session_principal \$http_x_user;
    proxy_pass http://127.0.0.1:$backend_port;
}
location /guarded {
    auth_basic "mcp";
    auth_basic_user_file $htpasswd;
    mcp_session zone=mcp;
    proxy_pass http://127.0.0.1:$backend_port;
}
location /closed { deny all; mcp_session zone=mcp; proxy_pass http://127.0.0.1:$backend_port; }
location /redirected {
    mcp_session zone=mcp;
    proxy_pass http://127.0.0.1:$backend_port;
    error_page 404 = \@gone;
}
location \@gone { return 410 "gone\n"; }
location = /status { mcp_session_status zone=mcp; }
CONF
}

sub make_node {
    my ($name, $port, $extra_http) = @_;
    return start_node(servroot => "$root/t/servroot-041-$name", port => $port, config => node_config(),
        http_config => "mcp_session_zone zone=mcp:1m idle_timeout=10m redis=127.0.0.1:$redis_port;\n"
                     . ($extra_http // ''));
}

my $A = make_node('a', $a_port);
my $B = make_node('b', $b_port, "server {\n    listen 127.0.0.1:$b_h2 http2;\n" . node_config() . "}\n");

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
my $call = '{"jsonrpc":"2.0","id":2,"method":"tools/list"}';

sub h { my ($res, $name) = @_; return $res->{headers}{ lc $name }[0] // '' }

sub post {
    my ($node, $uri, $body, @headers) = @_;
    return $node->request('POST', $uri, body => $body,
        headers => ['Content-Type' => 'application/json', Accept => 'application/json, text/event-stream', @headers]);
}

sub use_session { my ($node, $sid, @more) = @_; return post($node, '/mcp', $call, 'Mcp-Session-Id' => $sid, @more) }

sub create_on {
    my ($node, $uri, @headers) = @_;
    my $res = post($node, $uri // '/mcp', $initialize, @headers);
    return h($res, 'Mcp-Session-Id');
}

sub status_of { my ($node) = @_; return decode_json($node->request('GET', '/status')->{body}) }

# The key a session has in Redis: prefix, then its token (a form digit
# and the hex of the id as the zone stores it; plain ids are form 0).
sub session_key { my ($sid) = @_; return 'mcp:s:{0' . unpack('H*', $sid) . '}' }

# Both nodes' links are up in every worker (the status answers from any).
for my $node ($A, $B) {
    ok(poll_until(10, sub { (status_of($node)->{redis}{link} // '') eq 'up' }), 'the link to Redis comes up');
}

# A fresh Redis looks like one that came back empty: the first node marked
# a re-seed window (10 s of 503 for ids Redis does not hold). This test
# ends it at once; it is looked at after the restart below.
ok($redis->command('EXISTS', 'mcp:reseeding'), 'a fresh Redis gets a re-seed window');
$redis->command('DEL', 'mcp:reseeding');

# ---- made on A, valid on B
my $sid = create_on($A);
like($sid, qr/^s-[0-9a-f]{32}$/, 'A learned the backend\'s session');
my $record = $redis->hash(session_key($sid));
is($record->{v}, '1', 'the session is in Redis as a versioned hash');
ok($record->{c} > 0 && $record->{a} >= $record->{c}, 'with its creation and access times');
my $ttl = $redis->command('PTTL', session_key($sid));
ok($ttl > 0 && $ttl <= 600_000, "its Redis TTL is the idle deadline ($ttl ms)");

for my $i (1 .. 4) {  # 4 requests spread over B's 2 workers
    my $res = use_session($B, $sid);
    is($res->{status}, 200, "made on A, valid on B (request $i)");
    is(h($res, 'X-Saw'), "[$sid]", 'B passed the id on to the backend');
}
my $counters = status_of($B)->{counters};
ok($counters->{shared_adopted} >= 1 && $counters->{shared_adopted} <= 2,
   "B looked it up once per worker at most and cached it ($counters->{shared_adopted} adoptions)");

# An id nobody made: one lookup, then the usual 404.
my $unknown = use_session($B, 'never-made-1');
is($unknown->{status}, 404, 'unknown everywhere: 404');
like($unknown->{body}, qr/re-initialize/, 'with the re-initialize body');

# Over HTTP/2, the request waits for Redis the same way.
my $sid_h2 = create_on($A);
my $h2 = McpSession::Http2::h2_request($b_h2, 'POST', '/mcp', $call, 'Content-Type: application/json',
    "Mcp-Session-Id: $sid_h2");
is($h2->{version}, 'HTTP/2', 'answered over HTTP/2');
is($h2->{status}, 200, 'HTTP/2: made on A, valid on B after the lookup');
# (no body: nginx answers before reading one, see McpSession::Http2)
is(McpSession::Http2::h2_request($b_h2, 'POST', '/mcp', undef, 'Mcp-Session-Id: never-made-2')->{status}, 404,
   'HTTP/2: unknown is 404');

# ---- next to access control and internal redirects: a denied client
# never makes B look the session up, an allowed one does
my $guarded = create_on($A);
my $lookups = status_of($B)->{counters}{shared_lookups};
is(post($B, '/guarded', $call, 'Mcp-Session-Id' => $guarded)->{status}, 401, 'auth_basic: no credentials, 401');
is(post($B, '/closed', $call, 'Mcp-Session-Id' => $guarded)->{status}, 403, 'deny all: 403');
is(status_of($B)->{counters}{shared_lookups}, $lookups, 'neither made B ask Redis');
my $carol = 'Basic ' . MIME::Base64::encode_base64('carol:secret', '');
is(post($B, '/guarded', $call, 'Mcp-Session-Id' => $guarded, Authorization => $carol)->{status}, 200,
   'auth_basic passed: the lookup runs and the session is valid on B');
# The module's 404 is its own answer (the 404 contract), error_page or not,
# also when it comes after a lookup; a backend's 404 still goes to error_page.
my $absent = post($B, '/redirected', $call, 'Mcp-Session-Id' => 'never-made-3');
is($absent->{status}, 404, 'an absent session after the lookup: the module\'s 404');
like($absent->{body}, qr/re-initialize/, 'with its own body');
my $first_on_b = create_on($A);
is(post($B, '/redirected', $call, 'Mcp-Session-Id' => $first_on_b)->{status}, 200,
   'a request resumed after its lookup goes on through the location with error_page');

# ---- touches reach Redis batched: B's use moves the access time there
# (a local copy records a use at most once per touch granularity, 1 s
# here, and the batch goes out once a second: B keeps using the session)
my $before = $redis->hash(session_key($sid))->{a};
ok(poll_until(5, sub { use_session($B, $sid); ($redis->hash(session_key($sid))->{a} // 0) > $before }),
   'a use on B reaches Redis in the next batch');

# ---- DELETE on B ends it on A, within a measured bound
use_session($A, $sid) for 1 .. 2;  # both of A's workers hold a local copy
my $deleted = $B->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $sid]);
is($deleted->{status}, 200, 'DELETE on B');
my $t0 = time;
ok(poll_until(5, sub { use_session($A, $sid)->{status} == 404 && use_session($A, $sid)->{status} == 404 }),
   'the session ends on A (both workers)');
my $bound_ms = (time - $t0) * 1000;
diag(sprintf 'DELETE on B -> 404 on A after %.1f ms', $bound_ms);
ok($redis->command('EXISTS', session_key($sid) . ':gone'), 'a tombstone stays in Redis');
is($redis->command('EXISTS', session_key($sid)), 0, 'and the record is gone');
ok(status_of($A)->{counters}{shared_remote_ends} >= 1, 'A counted the end that came from elsewhere');

# ---- bound sessions: the binding holds across nodes
my $alice = create_on($A, '/bound', 'X-User' => 'alice');
ok($alice, 'A made a session bound to alice');
is(post($B, '/bound', $call, 'Mcp-Session-Id' => $alice, 'X-User' => 'alice')->{status}, 200,
   'alice uses it on B');
is(post($B, '/bound', $call, 'Mcp-Session-Id' => $alice, 'X-User' => 'bob')->{status}, 404,
   'bob cannot, on B either');
my $bound_record = $redis->hash(session_key($alice));
unlike(join(',', %$bound_record), qr/alice/, 'Redis holds a digest of the principal, never the name');

# ---- hostile values under the prefix: ignored with a log line
my $forged = 'forged-truncated-1';
$redis->command('HSET', session_key($forged), 'v', '1', 'c', '12');
is(use_session($B, $forged)->{status}, 404, 'a truncated record is not a session');
my $foreign = 'forged-foreign-1';
$redis->command('SET', session_key($foreign), 'not a hash');
is(use_session($B, $foreign)->{status}, 404, 'a foreign value under a session key is not a session');
$redis->command('HSET', session_key('forged-version-1'), 'v', '9', 'c', '1', 'a', '1', 'b', '0');
is(use_session($B, 'forged-version-1')->{status}, 404, 'a record of an unknown version is not a session');
$redis->command('PUBLISH', 'mcp:ended', "\x00\xffnot-a-token{}");
ok($B->wait_for_log(qr/ignored a malformed session record in Redis/), 'the malformed record was logged');
ok($B->wait_for_log(qr/not a hash/), 'the foreign value was logged');
ok($B->wait_for_log(qr/ignored a malformed end message/), 'a malformed end message was logged');
unlike($B->error_log, qr/not-a-token/, 'its bytes never reach the log');
ok(status_of($B)->{counters}{shared_malformed} >= 3, 'and counted');

# ---- node A stopped: its sessions live on B
my $survivor = create_on($A);
$A->stop;
is(use_session($B, $survivor)->{status}, 200, 'A stopped: its session lives on B');
$A->launch;

# ---- Redis killed: what B knows stays 200, what it cannot check is 503
my $known = create_on($B);
use_session($B, $known) for 1 .. 2;  # cached in both of B's workers
my $unseen = create_on($A);          # B has never seen it
$redis->kill_hard;
ok(poll_until(5, sub { (status_of($B)->{redis}{link} // '') eq 'down' && (status_of($B)->{redis}{link} // '') eq 'down' }),
   'B reports the link down');
ok($B->wait_for_log(qr/redis 127\.0\.0\.1:$redis_port is unreachable .*retrying with backoff/),
   'one log line says Redis went away');
for my $i (1 .. 4) {
    is(use_session($B, $known)->{status}, 200, "Redis down: a session B knows works (request $i)");
    my $res = use_session($B, $unseen);
    is($res->{status}, 503, "Redis down: one B cannot check is 503, never 404 (request $i)");
    is(h($res, 'Retry-After'), '1', 'with Retry-After');
}
my $made_while_down = create_on($B);
ok($made_while_down, 'creation works while Redis is down (kept locally)');
is(use_session($B, $made_while_down)->{status}, 200, 'and the new session is valid on B');
my $ended_while_down = create_on($B);
use_session($B, $ended_while_down) for 1 .. 2;
is($B->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $ended_while_down])->{status}, 200,
   'DELETE while Redis is down');
my $unreachable_lines = () = $B->error_log =~ /\[error\][^\n]*is unreachable/g;
ok($unreachable_lines >= 1 && $unreachable_lines <= 2,
   "no log line per retry ($unreachable_lines lines, one per worker at most)");

# ---- Redis back, empty: the nodes re-seed it and serve again
$redis->start;
ok($B->wait_for_log(qr/redis 127\.0\.0\.1:$redis_port is back/, 15), 'one log line says Redis is back');
ok(poll_until(15, sub { $redis->command('EXISTS', session_key($known)) }), 'B re-seeded its sessions into Redis');
ok(poll_until(15, sub { $redis->command('EXISTS', session_key($made_while_down)) }),
   'including the one made while Redis was down');
ok(poll_until(15, sub { $redis->command('EXISTS', session_key($unseen)) }), 'A re-seeded its own');
ok(poll_until(5, sub { $redis->command('EXISTS', session_key($ended_while_down) . ':gone') }),
   'the end made while Redis was down reached it');
# While the nodes re-seed a Redis that came back empty, "not there" is not
# a proof: an id Redis does not hold is 503 until the re-seed window ends
# (a tombstone still proves an end: see the DELETE made while down below).
ok($redis->command('EXISTS', 'mcp:reseeding'), 'the node that found Redis empty marked the re-seed');
my $during = use_session($B, 'never-made-4');
is($during->{status}, 503, 'during the re-seed an id Redis does not hold is 503, not 404');
is(h($during, 'Retry-After'), '1', 'with Retry-After');
$redis->command('DEL', 'mcp:reseeding');
is(use_session($B, 'never-made-4')->{status}, 404, 'after it, 404');
is(use_session($B, $unseen)->{status}, 200, 'the session B could not check is valid again');
is(use_session($A, $made_while_down)->{status}, 200, 'the one made on B while down is valid on A');
is(use_session($A, $ended_while_down)->{status}, 404, 'the one ended on B while down is ended on A');
# (A's workers may reconnect later than B's: until a worker's link is
# back its new sessions are local, and shared when it is)
my $fresh = create_on($A);
ok(poll_until(15, sub { $redis->command('EXISTS', session_key($fresh)) }), 'creation after the restart reaches Redis');
is(use_session($B, $fresh)->{status}, 200, 'and is valid on B');

unlike($A->error_log . $B->error_log, qr/\[(?:alert|crit|emerg)\]|exited on signal/, 'no worker crashed');

# ---- nginx -t: parameters are checked without connecting
my @bad = (
    ['redis=127.0.0.1:0',                        qr/invalid redis address/],
    ['redis=unix:',                              qr/invalid redis address .*no socket path/],
    ['redis=127.0.0.1:6379 redis_database=-1',   qr/invalid redis_database/],
    ['redis=127.0.0.1:6379 "redis_prefix=a b"',  qr/invalid redis_prefix/],
    ['redis=127.0.0.1:6379 "redis_prefix=a{b}"', qr/invalid redis_prefix/],
    ['redis=127.0.0.1:6379 redis_timeout=never', qr/redis_timeout/],
    ['redis_password=secret',                    qr/"redis_password" requires the "redis" parameter/],
    ['redis_prefix=x:',                          qr/"redis_prefix" requires the "redis" parameter/],
);
for my $case (@bad) {
    my ($params, $re) = @$case;
    my $checked = McpSession::Nginx->new(
        servroot => "$root/t/servroot-041-check", port => free_port(),
        http_config => "mcp_session_zone zone=mcp:1m $params;\n",
        config => "location /mcp { mcp_session zone=mcp; return 200; }\n");
    my ($code, $out) = $checked->check_config;
    isnt($code, 0, "nginx -t refuses $params");
    like($out, $re, "with a clear message ($params)");
}
my $good = McpSession::Nginx->new(
    servroot => "$root/t/servroot-041-check", port => free_port(),
    http_config => "mcp_session_zone zone=mcp:1m redis=127.0.0.1:1 redis_password=x redis_database=3 "
                 . "redis_prefix=team-a: redis_timeout=250ms;\n",
    config => "location /mcp { mcp_session zone=mcp; return 200; }\n");
my ($good_code, $good_out) = $good->check_config;
is($good_code, 0, 'nginx -t accepts every parameter, without a Redis to connect to') or diag($good_out);

$A->stop;
$B->stop;
$backend->stop;
$redis->stop;
done_testing;
