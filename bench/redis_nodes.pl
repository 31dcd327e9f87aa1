#!/usr/bin/perl
# Two nginx nodes (2 workers each) sharing one private redis-server
# (mcp_session_zone ... redis=): Redis memory per session, the first
# request on node B for sessions made on A (one Redis lookup) against the
# next one (local copy), and DELETE on B until A answers 404.
# Usage: perl bench/redis_nodes.pl DIR [SESSIONS]; prints one JSON line.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use McpSession::TestNginx qw(free_port);
use McpSession::Nginx;
use McpSession::Redis;
use Time::HiRes qw(time);

my ($dir, $count) = (@ARGV, 2000);
die "usage: $0 DIR [SESSIONS]\n" unless $dir;
my ($redis_port, $backend_port, $a_port, $b_port) = map { free_port() } 1 .. 4;

my $redis = McpSession::Redis->new(dir => "$dir/redis", port => $redis_port)->start;
my $backend = McpSession::Nginx->new(
    servroot => "$dir/backend", port => $backend_port, load_module => 0, log_level => 'warn', config => <<'CONF');
location / {
    if ($http_mcp_session_id = "") { add_header Mcp-Session-Id "$request_id" always; return 200 "init\n"; }
    return 200 "ok\n";
}
CONF
$backend->start;
my ($A, $B) = map {
    McpSession::Nginx->new(
        servroot    => "$dir/node-$_->[0]",
        port        => $_->[1],
        workers     => 2,
        log_level   => 'warn',
        http_config => "mcp_session_zone zone=mcp:64m redis=127.0.0.1:$redis_port;\n",
        config      => "location /mcp { mcp_session zone=mcp; proxy_pass http://127.0.0.1:$backend_port; }\n",
    )->start
} (['a', $a_port], ['b', $b_port]);

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
sub post {
    my ($node, $sid) = @_;
    return $node->request('POST', '/mcp', body => $sid ? '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' : $initialize,
        headers => ['Content-Type' => 'application/json', ($sid ? ('Mcp-Session-Id' => $sid) : ())]);
}
sub used_memory { my ($m) = $redis->command('INFO', 'memory') =~ /used_memory:(\d+)/; return $m }
sub pct { my ($sorted, $p) = @_; return $sorted->[ int($p * $#$sorted) ] }
sub ms_since { return (time - $_[0]) * 1000 }

McpSession::Nginx::poll_until(5, sub { $redis->command('EXISTS', 'mcp:binding_key') });
my $before = used_memory();
my $keys_before = $redis->command('DBSIZE');
my @sids = map { post($A)->{headers}{'mcp-session-id'}[0] } 1 .. $count;
McpSession::Nginx::poll_until(10, sub { $redis->command('DBSIZE') >= $keys_before + $count });
my $per_session = (used_memory() - $before) / $count;

my $sample = $count / 4;
my (@first, @local);
for my $sid (@sids[0 .. $sample - 1]) {
    my $t = time;
    post($B, $sid)->{status} == 200 or die "B refused a session made on A\n";
    push @first, ms_since($t);
    $t = time;
    post($B, $sid);
    push @local, ms_since($t);
}
my @ends;
for my $sid (@sids[$sample .. $sample + 99]) {
    post($A, $sid) for 1 .. 2;  # a local copy in both of A's workers
    $B->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $sid]);
    my $t = time;
    McpSession::Nginx::poll_until(3, sub { post($A, $sid)->{status} == 404 }) or die "A never saw the end\n";
    push @ends, ms_since($t);
}
@$_ = sort { $a <=> $b } @$_ for \@first, \@local, \@ends;
my $alerts = () = ($A->error_log . $B->error_log) =~ /\[(?:alert|crit|emerg)\]|exited on signal/g;
$_->stop for $A, $B, $backend;
$redis->stop;
printf '{"redis_bytes_per_session":%.0f,"first_p50_ms":%.3f,"first_p99_ms":%.3f,"local_p50_ms":%.3f,'
     . '"local_p99_ms":%.3f,"end_p50_ms":%.3f,"end_p99_ms":%.3f,"end_max_ms":%.3f,"alerts":%d}' . "\n",
    $per_session, pct(\@first, 0.5), pct(\@first, 0.99), pct(\@local, 0.5), pct(\@local, 0.99),
    pct(\@ends, 0.5), pct(\@ends, 0.99), $ends[-1], $alerts;
