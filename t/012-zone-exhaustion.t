# Far more sessions than the zone holds: the least recently used are
# evicted (counted, logged at most once a second), a session in use keeps
# working, nothing answers 5xx; and once everything has expired the zone's
# used bytes are back at the empty-zone figure (no leak of records, rings
# or bindings).
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Time::HiRes qw(time);
use Test::More;

my $n = start_nginx(
    workers     => 2,
    log_level   => 'notice',
    http_config => 'mcp_session_zone zone=mcp:128k idle_timeout=3s sweep_interval=200ms buffer=16;',
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_tenant $http_x_tenant;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /publish { mcp_session_publish zone=mcp; }
location = /status { mcp_session_status zone=mcp; }
CONF

sub status { my $b = $n->request('GET', '/status')->{body}; my %s = $b =~ /"(\w+)":(\d+)/g; return \%s }
sub create { $n->request('POST', "/mcp?sid=$_[0]", headers => ['X-Tenant' => 't1'], body => '{}') }
sub use_session { $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $_[0], 'X-Tenant' => 't1'], body => '{}') }

my $empty = status();
is($empty->{sessions}, 0, 'the zone starts empty');

my $started = time;
is(create('kept')->{status}, 200, 'kept created');
my ($errors, $kept_failures) = (0, 0);
my $count = 3000;
for my $i (1 .. $count) {
    my $res = create("filler-$i");
    $errors++ if $res->{status} >= 500 || $res->{status} == 0;
    # Some sessions get rings and events, so eviction frees those too.
    $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => "filler-$i"], body => '{"jsonrpc":"2.0","method":"notifications/message","params":{"e":' . ('1' x 200) . '}}') if $i % 10 == 0;
    if ($i % 10 == 0) {
        $kept_failures++ if use_session('kept')->{status} != 200;
    }
}
my $elapsed = time - $started;
is($errors, 0, "no 5xx while creating $count sessions");
is($kept_failures, 0, 'a session in use was never evicted');
is(use_session('kept')->{status}, 200, 'kept is valid');
is(use_session("filler-$count")->{status}, 200, 'the newest session is valid');
is(use_session('filler-1')->{status}, 404, 'the oldest idle ones were evicted');

my $full = status();
cmp_ok($full->{evicted}, '>', 0, 'evictions are counted in the status');
# On a slow machine the oldest fillers can idle out before the zone fills;
# those are counted as expired, not evicted.
cmp_ok($full->{sessions} + $full->{evicted} + $full->{expired_swept} + $full->{expired_lazily}, '>=', $count,
       'every session is in the zone or counted as evicted or expired');
my @warns = $n->error_log =~ /\[warn\].*mcp_session zone "mcp" is full: evicted \d+ least recently used sessions/g;
cmp_ok(scalar(@warns), '>', 0, 'the eviction is logged');
cmp_ok(scalar(@warns), '<=', int($elapsed) + 2, 'at most one warn line per second');

# Everything expires (idle 3 s) and the sweep returns the memory.
my $now;
poll_until(30, sub { $now = status(); $now->{sessions} == 0 });
is($now->{sessions}, 0, 'every session expired and was swept');
is($now->{sessions_with_ring}, 0, 'no ring left');
is($now->{bytes_used}, $empty->{bytes_used}, "used bytes are back at the empty zone's $empty->{bytes_used}");

unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'no alert, crit or crash');
$n->stop;
done_testing;
