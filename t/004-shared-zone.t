# The zone is shared by every worker, survives `nginx -s reload`, and
# evicts the least recently used session when it is full.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
CONF

sub header_of { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

sub create { my ($n, $sid) = @_; return $n->request('POST', "/mcp?sid=$sid", body => '{}') }

sub use_session {
    my ($n, $sid) = @_;
    return $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{}');
}

# Created in one worker, validated in the other.
{
    my $n = start_nginx(workers => 2, http_config => 'mcp_session_zone zone=mcp:1m;', config => $locations);
    my $created = create($n, 'cross-worker');
    is($created->{status}, 200, 'workers: session created');
    my $creator = header_of($created, 'X-Pid');
    my %pids = ($creator => 1);
    my $validated_elsewhere;
    for (1 .. 200) {
        my $res = use_session($n, 'cross-worker');
        is($res->{status}, 200, 'workers: validated') if $_ == 1;
        die "session rejected: $res->{status}" if $res->{status} != 200;
        my $pid = header_of($res, 'X-Pid');
        $pids{$pid} = 1;
        if ($pid ne $creator) { $validated_elsewhere = $res; last }
    }
    is(scalar(keys %pids), 2, 'workers: both worker pids answered');
    ok($validated_elsewhere, 'workers: a worker other than the creator validated the session');
    is(header_of($validated_elsewhere, 'X-Session-Status'), 'valid', 'workers: ... as valid') if $validated_elsewhere;
    is_deeply([sort keys %pids], [sort @{ $n->worker_pids }], 'workers: the pids are this nginx\'s workers');
    $n->stop;
}

# nginx -s reload keeps the zone and its sessions; new workers serve them.
{
    my $n = start_nginx(workers => 2, http_config => 'mcp_session_zone zone=mcp:1m;', config => $locations);
    is(create($n, 'survivor')->{status}, 200, 'reload: session created');
    my @before = sort @{ $n->worker_pids };
    $n->reload(http_config => 'mcp_session_zone zone=mcp:1m idle_timeout=10m;', config => $locations);
    my @after = sort @{ $n->worker_pids };
    ok(!grep({ my $p = $_; grep { $_ eq $p } @before } @after), 'reload: all workers are new');
    my $res = use_session($n, 'survivor');
    is($res->{status}, 200, 'reload: session still valid');
    is(header_of($res, 'X-Session-Status'), 'valid', 'reload: status valid');
    ok((grep { $_ eq header_of($res, 'X-Pid') } @after), 'reload: answered by a new worker');
    is(use_session($n, 'never-made')->{status}, 404, 'reload: unknown ids still rejected');

    # A different size cannot reuse the memory: nginx makes a new, empty zone.
    $n->reload(http_config => 'mcp_session_zone zone=mcp:2m;', config => $locations);
    is(use_session($n, 'survivor')->{status}, 404, 'reload: resized zone starts empty');
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'reload: clean error log');
    $n->stop;
}

# A full zone evicts the least recently used session; the recently used
# one and the newest keep working, with no 5xx, and the eviction is logged.
{
    my $n = start_nginx(workers => 2, http_config => 'mcp_session_zone zone=mcp:32k;', config => $locations);
    is(create($n, 'kept-busy')->{status}, 200, 'full: first session');
    is(create($n, 'left-idle')->{status}, 200, 'full: second session');
    my ($failures, $last) = (0, '');
    for my $i (1 .. 600) {
        $last = sprintf('filler-%04d', $i);
        $failures++ if create($n, $last)->{status} != 200;
        if ($i % 20 == 0) {
            $failures++ if use_session($n, 'kept-busy')->{status} != 200;
        }
    }
    is($failures, 0, 'full: no request failed while the zone filled up');
    ok($n->wait_for_log(qr/\[warn\].*mcp_session zone "mcp" is full: evicted \d+ least recently used sessions/, 5),
       'full: eviction logged with the zone name');
    is(use_session($n, 'left-idle')->{status}, 404, 'full: the least recently used session was evicted');
    is(use_session($n, 'filler-0001')->{status}, 404, 'full: old fillers evicted');
    is(use_session($n, 'kept-busy')->{status}, 200, 'full: a recently used session survived');
    is(use_session($n, $last)->{status}, 200, 'full: the newest session is valid');
    my @warns = $n->error_log =~ /is full: evicted/g;
    cmp_ok(scalar(@warns), '<', 600, 'full: not one warn line per eviction');
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]|no memory/, 'full: no allocator errors');
    $n->stop;
}

done_testing();
