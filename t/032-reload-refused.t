# A reload the module cannot set up is refused, not fatal: nginx exits on
# an init_module error, even on a reload, so everything that can fail
# (the workers' doorbells, one eventfd each) is made while the zones are
# set up, where a failure keeps the running configuration. Here the
# master's descriptor limit is lowered so that a reload to 48 workers
# cannot make its doorbells: the master and its 2 workers keep serving,
# sessions intact; with the limit back, the same reload succeeds.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';

my $n = start_nginx(
    workers     => 2,
    log_level   => 'notice',
    http_config => 'mcp_session_zone zone=mcp:8m;',
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_stream on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { return 200 "ok\n"; }
CONF

my $res = $n->request('POST', '/mcp', body => $initialize);
is($res->{status}, 200, 'a session is made');
my $sid = $res->{headers}{'mcp-session-id'}[0];

my $master = $n->master_pid;
my @workers = sort @{ $n->worker_pids };
opendir(my $dh, "/proc/$master/fd") or die "no /proc/$master/fd: $!";
my $open = grep { /^\d+$/ } readdir $dh;
closedir $dh;
my $limit = $open + 16;  # room for the reload's own files, not for 48 eventfds
# Only the soft limit changes, so it can be put back without privileges.
my ($soft, $hard) = `prlimit --pid=$master --nofile --raw --noheadings --output=SOFT,HARD` =~ /(\S+)\s+(\S+)/
    or die "prlimit failed\n";
system('prlimit', "--pid=$master", "--nofile=$limit:$hard") == 0 or die "prlimit failed\n";

$n->{workers} = 48;
$n->write_config;
kill 'HUP', $master;
ok($n->wait_for_log(qr/\[emerg\].*mcp_session: eventfd\(\) failed for worker \d+ of 48/, 10),
   'the reload fails making the doorbells, with an emerg line naming the worker');
ok(poll_until(5, sub { $n->error_log =~ /eventfd\(\) failed/ && McpSession::Nginx::alive($master) }),
   'the master is still running');
is_deeply([sort @{ $n->worker_pids }], \@workers, 'the same two workers serve');
is($n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{}')->{status}, 200,
   'the session made before is still valid');
unlike($n->error_log, qr/exited with fatal code|exit\(1\)/, 'no fatal exit');

system('prlimit', "--pid=$master", "--nofile=$soft:$hard") == 0 or die "prlimit failed\n";

ok($n->reload(workers => 48), 'with the limit back the same reload succeeds: 48 new workers');
is($n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{}')->{status}, 200,
   'and the session is still valid');
ok($n->reload(workers => 2), 'back to 2 workers');

unlike($n->error_log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit)\]/, 'no crash or alert');
$n->stop;
done_testing();
