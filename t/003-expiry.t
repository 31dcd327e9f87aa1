# Sessions end by lifetime (checked lazily on lookup) and by the periodic
# sweep, with two workers sharing one zone.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use Time::HiRes qw(time);

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
CONF

sub status_of { my ($res) = @_; return $res->{headers}{'x-session-status'}[0] // '' }

# Lifetime: the session answers until its lifetime is over, then the
# first lookup finds it expired (and removes it), later ones find nothing.
{
    my $n = start_nginx(
        workers     => 2,
        http_config => 'mcp_session_zone zone=mcp:1m max_lifetime=400ms sweep_interval=1h;',
        config      => $locations,
    );
    my $created_at = time;
    my $res = $n->request('POST', '/mcp?sid=short-lived', body => '{}');
    is($res->{status}, 200, 'lifetime: session created');
    is(status_of($res), 'new', 'lifetime: status new');

    my ($last, $polls) = (undef, 0);
    my $deadline = time + 10;
    while (time < $deadline) {
        $last = $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => 'short-lived'], body => '{}');
        $polls++;
        last if $last->{status} != 200;
        is(status_of($last), 'valid', 'lifetime: valid while young') if $polls == 1;
    }
    is($last->{status}, 404, 'lifetime: 404 once the lifetime is over');
    is(status_of($last), 'expired', 'lifetime: the first lookup after the deadline reports expired');
    like($last->{body}, qr/"error":"session_expired"/, 'lifetime: re-initialize body');
    cmp_ok(time - $created_at, '>=', 0.4, 'lifetime: not expired before max_lifetime');

    my $after = $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => 'short-lived'], body => '{}');
    is(status_of($after), 'unknown', 'lifetime: the expired session was removed on lookup');
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'lifetime: clean error log');
    $n->stop;
}

# Idle sessions are removed by the sweep without any request touching
# them: a later lookup finds nothing ("unknown", not "expired").
{
    my $n = start_nginx(
        workers     => 2,
        http_config => 'mcp_session_zone zone=mcp:1m idle_timeout=200ms sweep_interval=100ms;',
        config      => $locations,
    );
    for my $sid (qw(idle-a idle-b idle-c)) {
        is($n->request('POST', "/mcp?sid=$sid", body => '{}')->{status}, 200, "sweep: $sid created");
    }
    # Both workers run the timer; the shared schedule lets each session be
    # swept exactly once. One sweep may take some of the three and a later
    # one the rest, so wait for the sum before looking them up.
    my $swept = 0;
    poll_until(10, sub {
        my $log = $n->error_log;
        $swept = 0;
        $swept += $1 while $log =~ /sweep removed (\d+) expired sessions/g;
        return $swept >= 3;
    });
    is($swept, 3, 'sweep: three sessions swept in all, none twice');
    for my $sid (qw(idle-a idle-b idle-c)) {
        my $res = $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{}');
        is($res->{status}, 404, "sweep: $sid is gone");
        is(status_of($res), 'unknown', "sweep: $sid was removed by the sweep, not on lookup");
    }
    $n->stop;
}

done_testing();
