# Sessions adopted from a newer state file into a zone that already holds
# sessions of its own are merged into the creation and LRU queues by
# their saved times: the sweep, which walks each queue from its oldest end
# and stops at the first live session, still removes them when they expire.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use File::Temp qw(tempdir);
use Time::HiRes qw(time);
use Test::More;

my $dir = tempdir(CLEANUP => 1);
my $state = "$dir/mcp.state";

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /status { mcp_session_status zone=mcp; }
CONF

sub zone_line { my ($extra) = @_; return "mcp_session_zone zone=mcp:1m state=$state sweep_interval=50ms $extra;" }
sub create { my ($n, $sid) = @_; return $n->request('POST', "/mcp?sid=$sid", body => '{}') }
sub use_session { my ($n, $sid) = @_; return $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{}') }
sub sessions { my ($n) = @_; return $n->request('GET', '/status')->{body} =~ /"sessions":(\d+)/ ? $1 : -1 }
sub slurp { my ($path) = @_; open my $fh, '<:raw', $path or return; local $/; my $b = <$fh>; return $b }
sub spew { my ($path, $bytes) = @_; open my $fh, '>:raw', $path or die "$path: $!"; print {$fh} $bytes; close $fh; chmod 0600, $path }

for my $case (['max_lifetime=4s idle_timeout=1h', 'creation'], ['idle_timeout=4s', 'last access']) {
    my ($limits, $queue) = @$case;
    unlink $state;
    # Older sessions, saved at exit by one nginx.
    my $n = start_nginx(workers => 2, http_config => zone_line("$limits state_interval=1h"), config => $locations);
    my $first_pid = $n->master_pid;
    for my $sid (qw(old-1 old-2)) {
        create($n, $sid);
        use_session($n, $sid);  # established, like every restored session
    }
    my $t_old = time;
    $n->stop;
    poll_until(5, sub { !McpSession::Nginx::alive($first_pid) });
    my $saved = slurp($state);
    ok(length($saved // ''), "$queue: the older sessions were saved");
    unlink $state;

    # A zone with a session of its own, newer than the file's; the file
    # appears (as another nginx's exit save would) and is adopted.
    # Two seconds apart, so the sweep (every 50 ms) tells the expiries apart.
    poll_until(5, sub { time >= $t_old + 2 });
    $n->{http_config} = zone_line("$limits state_interval=200ms");
    $n->restart;
    create($n, 'new');
    use_session($n, 'new');
    spew($state, $saved);
    poll_until(5, sub { $n->error_log =~ /adopted 2 sessions from/ });
    like($n->error_log, qr/adopted 2 sessions from "\Q$state\E"/, "$queue: the file's two sessions were adopted");
    is(sessions($n), 3, "$queue: three sessions in the zone");

    # The older two expire first; the sweep must reach them although the
    # newer one, still live, was in the zone before them.
    my $count = 3;
    # (the two expire a few milliseconds apart: wait for both)
    poll_until(10, sub { $count = sessions($n); $count < 2 });
    is($count, 1, "$queue: the sweep removed the two adopted sessions and kept the newer one");
    is(use_session($n, 'new')->{status}, 200, "$queue: the newer session is still valid");
    $n->stop;
}

unlike(join('', map { slurp($_) // '' } glob(McpSession::TestNginx::servroot() . '/logs/error.log')),
    qr/\[(alert|crit)\]|exited on signal/, 'no alert, crit or crash in the error log');

done_testing;
