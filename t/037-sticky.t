# mcp_session_sticky: every request of a session goes to the upstream
# server that created it, from both workers, across reloads that reorder
# or add servers, across a restart with state=, in learn and issue mode,
# and proxy_next_upstream never moves a pinned session.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Nginx;
use McpSession::Http2;
use JSON::PP qw(decode_json);
use IO::Socket::INET;
use Test::More;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
my $call = '{"jsonrpc":"2.0","id":2,"method":"tools/list"}';

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

# Three replicas in a second nginx, each answering with its own port; an
# initialize (no Mcp-Session-Id) gets a session id made by that replica.
my @ports = map { free_port() } 1 .. 4;
my ($a, $b, $c, $d) = @ports;
my $h2 = free_port();  # the front's HTTP/2 listener
# A listener that never answers: a replica proxies ?slow=1 there, so the
# front's proxy_read_timeout fires after the request went out.
my $silent = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16) or die "listen: $!";
my $silent_port = $silent->sockport;

sub replica_location {
    my ($port) = @_;
    return <<"CONF";
    location / {
        if (\$arg_fixed) {
            add_header Mcp-Session-Id "fixed-one" always;
            add_header X-Backend $port always;
            return 200 "init $port\\n";
        }
        if (\$http_mcp_session_id = "") {
            add_header Mcp-Session-Id "s-$port-\$request_id" always;
            add_header X-Backend $port always;
            return 200 "init $port\\n";
        }
        if (\$arg_fail) {
            add_header X-Backend $port always;
            return 502 "replica $port failed\\n";
        }
        if (\$arg_slow) {
            rewrite ^ /slow-path last;
        }
        add_header X-Backend $port always;
        add_header X-Saw "[\$http_mcp_session_id]" always;
        return 200 "ok $port\\n";
    }
    location = /slow-path { proxy_pass http://127.0.0.1:$silent_port; }
CONF
}

sub replica_block { my ($port) = @_; return "server {\n    listen 127.0.0.1:$port;\n" . replica_location($port) . "}\n" }

sub replicas_config { my (@live) = @_; return join '', map { replica_block($_) } @live }

my $replicas = McpSession::Nginx->new(
    servroot    => McpSession::Nginx::repo_root() . '/t/servroot-037-replicas',
    port        => $a,
    workers     => 1,
    load_module => 0,
    log_level   => 'warn',
    http_config => replicas_config($b, $c, $d),
    config      => replica_location($a),
);
$replicas->start;
$replicas->{started_by_api} = 1;

my $primary_down = 1;  # upstream `backed`: its primary server marked down, so sessions go to the backup
sub upstream_block {
    my (@servers) = @_;
    return "upstream pool {\n" . join('', map { "    server 127.0.0.1:$_ max_fails=0;\n" } @servers)
         . "    mcp_session_sticky;\n}\n"
         # round robin's defaults: one failure takes a server out for fail_timeout
         # shared peer state (an upstream zone) and keepalive after the balancer
         . "upstream zoned {\n    zone zoned 64k;\n" . join('', map { "    server 127.0.0.1:$_;\n" } @servers)
         . "    mcp_session_sticky;\n    keepalive 8;\n}\n"
         . "upstream backed {\n    server 127.0.0.1:$a" . ($primary_down ? ' down' : '') . ";\n"
         . "    server 127.0.0.1:$b backup;\n    mcp_session_sticky;\n}\n"
         . "upstream fragile {\n" . join('', map { "    server 127.0.0.1:$_ max_fails=1 fail_timeout=30s;\n" } @servers)
         . "    mcp_session_sticky;\n}\n";
}

my $state_dir = McpSession::Nginx::repo_root() . '/t/servroot-037-state';
system('rm', '-rf', $state_dir);
mkdir $state_dir or die "$state_dir: $!";
chmod 0700, $state_dir;

my $locations;
sub front_http {
    my (@servers) = @_;
    return "mcp_session_zone zone=mcp:1m state=$state_dir/mcp.state;\n" . upstream_block(@servers)
         . "server {\n    listen 127.0.0.1:$h2 http2;\n$locations}\n";
}

$locations = <<'CONF';
# Every answer names the pinned server and the worker (no location adds headers of its own).
add_header X-Pinned $mcp_session_upstream always;
add_header X-Pid $pid always;
location /mcp {
    mcp_session zone=mcp;
    proxy_pass http://pool;
    proxy_next_upstream error timeout http_502;
}
location /issue {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    proxy_pass http://pool;
}
location /fragile {
    mcp_session zone=mcp;
    proxy_pass http://fragile;
    proxy_read_timeout 1s;
}
location /zoned {
    mcp_session zone=mcp;
    proxy_pass http://zoned;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
}
location /backed {
    mcp_session zone=mcp;
    proxy_pass http://backed;
}
location /maintained {
    mcp_session zone=mcp;
    proxy_pass http://pool;
    error_page 502 504 =503 /maintenance;
}
location = /maintenance { internal; return 503 "maintenance\n"; }
location = /status { mcp_session_status zone=mcp; }
CONF

my $n = start_nginx(workers => 2, log_level => 'info', http_config => front_http($a, $b, $c), config => $locations);

sub post {
    my ($uri, $body, @headers) = @_;
    return $n->request('POST', $uri, headers => ['Content-Type' => 'application/json', @headers], body => $body);
}

# 30 sessions: round robin spreads them over the three servers.
my (%home, %per_server);
for my $i (1 .. 30) {
    my $res = post('/mcp', $initialize);
    die "initialize $i: $res->{status}" unless $res->{status} == 200;
    my $sid = h($res, 'Mcp-Session-Id');
    $home{$sid} = h($res, 'X-Backend');
    $per_server{ $home{$sid} }++;
    is(h($res, 'X-Pinned'), "127.0.0.1:$home{$sid}", "session $i: \$mcp_session_upstream names its server")
        if $i <= 3;
}
is_deeply([sort keys %per_server], [sort $a, $b, $c], 'new sessions are balanced over all three servers');
# Without an upstream zone each worker keeps its own round robin position.
is(scalar(grep { $_ >= 8 && $_ <= 12 } values %per_server), 3, '... by round robin, 10 each give or take one per worker');

sub all_at_home {
    my ($uri, %sessions) = @_;
    my ($wrong, %pids) = (0);
    for my $round (1 .. 6) {
        for my $sid (keys %sessions) {
            my $res = post($uri, $call, 'Mcp-Session-Id' => $sid);
            $wrong++ if $res->{status} != 200 || h($res, 'X-Backend') ne $sessions{$sid}
                || h($res, 'X-Pinned') ne "127.0.0.1:$sessions{$sid}";
            $pids{ h($res, 'X-Pid') }++;
        }
    }
    return ($wrong, scalar keys %pids);
}

my ($wrong, $workers) = all_at_home('/mcp', %home);
is($wrong, 0, '180 requests of 30 sessions: every one reached the server that made its session');
is($workers, 2, '... served by both workers (the pins are in the shared zone)');

# HTTP/2: the same pins, whichever protocol the client speaks.
sub h2 { my ($path, $body, @headers) = @_; return McpSession::Http2::h2_request($h2, 'POST', $path, $body,
         'Content-Type: application/json', @headers) }
my %h2home;
for (1 .. 6) {
    my $res = h2('/mcp', $initialize);
    $h2home{ $res->{headers}{'mcp-session-id'}[0] } = $res->{headers}{'x-backend'}[0];
}
my $h2wrong = 0;
for my $sid (keys %h2home) {
    for (1 .. 3) {
        $h2wrong++ if (h2('/mcp', $call, "Mcp-Session-Id: $sid")->{headers}{'x-backend'}[0] // '') ne $h2home{$sid};
        $h2wrong++ if h(post('/mcp', $call, 'Mcp-Session-Id' => $sid), 'X-Backend') ne $h2home{$sid};
    }
}
is(scalar(keys %h2home), 6, 'HTTP/2: six sessions made');
is($h2wrong, 0, 'HTTP/2 and HTTP/1.1 requests of sessions made over HTTP/2 all reach their server');
$per_server{ $h2home{$_} }++ for keys %h2home;

# A server that failed one request (round robin marks it failed for
# fail_timeout) still serves its other sessions, and the request that
# timed out after it was sent ends nothing: only a server nobody can
# connect to is gone.
my %fragile;
for (1 .. 6) {
    my $res = post('/fragile', $initialize);
    push @{ $fragile{ h($res, 'X-Backend') } }, h($res, 'Mcp-Session-Id');
}
my ($x) = grep { @{ $fragile{$_} } >= 2 } keys %fragile;
my ($s1, $s2) = @{ $fragile{$x} };
my $timed_out = post('/fragile?slow=1', $call, 'Mcp-Session-Id' => $s1);
is($timed_out->{status}, 504, 'a request that times out after it was sent gets 504, not the 404');
is(h(post('/fragile', $call, 'Mcp-Session-Id' => $s2), 'X-Backend'), $x,
   'another session on that server is still served by it (max_fails reached, server alive)');
is(h(post('/fragile', $call, 'Mcp-Session-Id' => $s1), 'X-Backend'), $x, '... and so is the one that timed out');
$per_server{$_} += @{ $fragile{$_} } for keys %fragile;

# With an upstream zone (peers in shared memory, their locks taken) and
# keepalive connections after the balancer, the pins hold the same way.
my %zoned;
for (1 .. 6) {
    my $res = post('/zoned', $initialize);
    $zoned{ h($res, 'Mcp-Session-Id') } = h($res, 'X-Backend');
}
my ($zoned_wrong, $zoned_pids) = all_at_home('/zoned', %zoned);
is($zoned_wrong, 0, 'upstream zone + keepalive: every request reaches its session\'s server');
is(scalar(keys %{ { map { $_ => 1 } values %zoned } }), 3, '... and new sessions were spread over all three');
$per_server{$_}++ for values %zoned;

# A backend that answers an initialize with a live session's id does not
# move that session to itself.
my $fixed_first = post('/mcp?fixed=1', $initialize);
my $fixed_home = h($fixed_first, 'X-Backend');
my %fixed_seen = ($fixed_home => 1);
for (1 .. 5) { $fixed_seen{ h(post('/mcp?fixed=1', $initialize), 'X-Backend') } = 1 }
ok(keys %fixed_seen > 1, 'the reused id was answered by more than one server');
is(h(post('/mcp', $call, 'Mcp-Session-Id' => 'fixed-one'), 'X-Backend'), $fixed_home,
   'the session keeps the server that made it first');
$per_server{$fixed_home}++;

my $status = decode_json($n->request('GET', '/status')->{body});
is_deeply($status->{upstreams}, { map { ("127.0.0.1:$_" => $per_server{$_}) } $a, $b, $c },
          'status counts sessions per server');
my $metrics = $n->request('GET', '/status?format=prometheus')->{body};
like($metrics, qr/^mcp_session_upstream_sessions\{zone="mcp",upstream="127\.0\.0\.1:$a"\} $per_server{$a}$/m,
     'Prometheus: mcp_session_upstream_sessions per server');

# A pinned session is never retried elsewhere: its server's 502 reaches the
# client although proxy_next_upstream names http_502.
my ($some) = grep { $home{$_} eq $b } keys %home;
my $failed = post('/mcp?fail=1', $call, 'Mcp-Session-Id' => $some);
is($failed->{status}, 502, "a pinned session's request is not retried on another server");
is(h($failed, 'X-Backend'), $b, '... the answer is its own server\'s');
is(post('/mcp', $call, 'Mcp-Session-Id' => $some)->{status}, 200, '... and the session lives on (a backend 502 ends nothing)');

# A session made while the primary server is down lands on the backup,
# and stays there once the primary is back.
my %backed;
for (1 .. 3) {
    my $res = post('/backed', $initialize);
    $backed{ h($res, 'Mcp-Session-Id') } = h($res, 'X-Backend');
}
is_deeply([values %backed], [$b, $b, $b], 'with the primary down, new sessions go to the backup server');
$per_server{$b} += 3;
$primary_down = 0;

# A reload that reorders the servers and adds one keeps every pin.
ok($n->reload(http_config => front_http($d, $c, $a, $b)), 'reload with the servers reordered and one added');
($wrong) = all_at_home('/mcp', %home);
is($wrong, 0, 'after the reload every session still reaches its own server (matched by address)');
($wrong) = all_at_home('/backed', %backed);
is($wrong, 0, 'with the primary back, sessions pinned to the backup still reach it');
is(h(post('/backed', $initialize), 'X-Backend'), $a, '... while a new session goes to the primary');
$per_server{$a}++;
my %fresh;
for (1 .. 8) {
    my $res = post('/mcp', $initialize);
    $fresh{ h($res, 'X-Backend') }++;
}
ok($fresh{$d}, 'new sessions reach the added server too');

# Issue mode: nginx makes the id, the replica's own is kept for it, and
# the pin holds the same way.
my %issued;
for (1 .. 8) {
    my $res = post('/issue', $initialize);
    my $sid = h($res, 'Mcp-Session-Id');
    unlike($sid, qr/^s-/, 'issue mode: the client sees nginx\'s id') if !%issued;
    $issued{$sid} = h($res, 'X-Backend');
}
($wrong) = all_at_home('/issue', %issued);
is($wrong, 0, 'issue mode: every request reaches the server that answered the initialize');
my ($one) = keys %issued;
like(h(post('/issue', $call, 'Mcp-Session-Id' => $one), 'X-Saw'), qr/^\[s-$issued{$one}-/,
     '... and carries that server\'s own session id');

# A restart with state= keeps the pins: they are saved with the sessions.
$n->stop;
$n->launch;
($wrong) = all_at_home('/mcp', %home);
is($wrong, 0, 'after a restart (state=) every learned session still reaches its own server');
($wrong) = all_at_home('/issue', %issued);
is($wrong, 0, '... and every issued one');
$status = decode_json($n->request('GET', '/status')->{body});
is($status->{upstreams}{"127.0.0.1:$a"} // 0, $per_server{$a} + ($fresh{$a} // 0) + grep({ $_ eq $a } values %issued),
   'the restored zone counts the pins again');

# The pinned server is gone: the session ends at the edge and the client
# gets nginx's 404 re-initialize answer (never a 502), counted; the next
# initialize lands on a live server; other sessions go on.
sub is_reinitialize {
    my ($res, $name) = @_;
    my $body = eval { decode_json($res->{body}) } // {};
    ok($res->{status} == 404 && ($body->{error}{code} // 0) == -32001 && h($res, 'X-Backend') eq '',
       "$name: nginx's 404 re-initialize answer") or diag("$res->{status} $res->{body}");
}
my $lost_before = $status->{counters}{sessions_replica_lost};
ok($replicas->reload(http_config => replicas_config($c, $d)), "replica $b stops listening (connection refused)");
my @on_b = grep { $home{$_} eq $b } keys %home;
is_reinitialize(post('/mcp', $call, 'Mcp-Session-Id' => $on_b[0]), 'learn mode, refused');
is(post('/mcp', $call, 'Mcp-Session-Id' => $on_b[0])->{status}, 404, '... the session is gone at the edge');
my ($h2_on_b) = grep { $h2home{$_} eq $b } keys %h2home;
my $h2gone = h2('/mcp', $call, "Mcp-Session-Id: $h2_on_b");
is($h2gone->{status}, 404, 'HTTP/2: a session whose server is gone gets 404');
is(eval { decode_json($h2gone->{body})->{error}{code} }, -32001, "HTTP/2: ... nginx's re-initialize body");
my $maintained = $n->request('POST', '/maintained', headers => ['Content-Type' => 'application/json',
                              'Mcp-Session-Id' => $on_b[1]], body => $call);
is("$maintained->{status} $maintained->{body}", "503 maintenance\n", "an error_page for the 502 answers as the operator wrote it");
is(post('/mcp', $call, 'Mcp-Session-Id' => $on_b[1])->{status}, 404, '... and the session is ended all the same');
my ($issued_b) = grep { $issued{$_} eq $b } keys %issued;
is_reinitialize(post('/issue', $call, 'Mcp-Session-Id' => $issued_b), 'issue mode, refused') if $issued_b;
my $again = post('/mcp', $initialize);
ok($again->{status} == 200 && h($again, 'X-Backend') ne $b && h($again, 'X-Backend') ne '',
   'a new initialize lands on a live server');
my %others = map { ($_ => $home{$_}) } grep { $home{$_} ne $b } keys %home;
($wrong) = all_at_home('/mcp', %others);
is($wrong, 0, 'sessions on the other servers are unaffected');

# Marked down, and removed from the upstream by a reload: gone as well.
my $front_http = front_http($d, $a, $b) =~ s/(server 127\.0\.0\.1:$a) max_fails=0;/$1 down;/r;
ok($n->reload(http_config => $front_http), "reload: $a marked down, $c removed");
my ($on_a) = grep { $home{$_} eq $a } keys %home;
my ($on_c) = grep { $home{$_} eq $c } keys %home;
is_reinitialize(post('/mcp', $call, 'Mcp-Session-Id' => $on_a), 'pinned server marked down');
is_reinitialize(post('/mcp', $call, 'Mcp-Session-Id' => $on_c), 'pinned server removed by a reload');
$status = decode_json($n->request('GET', '/status')->{body});
cmp_ok($status->{counters}{sessions_replica_lost} - $lost_before, '>=', 5 + ($issued_b ? 1 : 0),
       'status counts sessions_replica_lost');

# nginx -t catches misuse.
sub config_error {
    my ($http, $conf) = @_;
    my $t = McpSession::Nginx->new(servroot => McpSession::Nginx::repo_root() . '/t/servroot-037-t', port => free_port(),
                                   http_config => "mcp_session_zone zone=mcp:1m;\n$http", config => $conf);
    my ($code, $out) = $t->check_config;
    return $code == 0 ? '' : $out;
}
my $plain = 'location /x { proxy_pass http://u; }';
my $with = 'location /x { mcp_session zone=mcp; proxy_pass http://u; }';
like(config_error("upstream u { server 127.0.0.1:$a; mcp_session_sticky; }", $plain),
     qr/upstream "u" has "mcp_session_sticky" but this location proxies to it without "mcp_session"/,
     'nginx -t: a sticky upstream used by a location without mcp_session');
like(config_error("upstream u { server 127.0.0.1:$a; keepalive 4; mcp_session_sticky; }", $with),
     qr/"mcp_session_sticky" must precede "keepalive"/, 'nginx -t: mcp_session_sticky after keepalive');
like(config_error("upstream u { server 127.0.0.1:$a; mcp_session_sticky; least_conn; }", $with),
     qr/upstream "u": "mcp_session_sticky" was replaced by a load balancing method given after it/,
     'nginx -t: a balancing method after mcp_session_sticky');
like(config_error("upstream u { server 127.0.0.1:$a; mcp_session_sticky; mcp_session_sticky; }", $with),
     qr/"mcp_session_sticky" directive is duplicate/, 'nginx -t: duplicate');
like(config_error("upstream u { server 127.0.0.1:$a; mcp_session_sticky on; }", $with),
     qr/invalid number of arguments in "mcp_session_sticky"/, 'nginx -t: arguments');
like(config_error('', 'location /x { mcp_session_sticky; }'), qr/"mcp_session_sticky" directive is not allowed here/,
     'nginx -t: outside an upstream block');
is(config_error("upstream u { server 127.0.0.1:$a; mcp_session_sticky; }",
                'location /x { mcp_session zone=mcp; proxy_pass http://u; location /x/health { mcp_session off; return 200; } }'),
   '', 'nginx -t: a nested location without mcp_session that does not proxy is fine');
is(config_error("upstream u { server 127.0.0.1:$a; mcp_session_sticky; keepalive 4; zone u 64k; }", $with), '',
   'nginx -t: with keepalive after it and an upstream zone, accepted');

done_testing();
