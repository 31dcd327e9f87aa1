#!/usr/bin/perl
# Time to heal (issue 14): how long the client's request takes when nginx
# heals its session on the way (mcp_session_heal: the kept initialize and
# notifications/initialized replayed, the request sent again), against
# the same call of a healthy session. An nginx of its own (2 workers) in
# front of two stateful Perl MCP backends (t/lib/McpSession/FakeMcp.pm)
# behind a `mcp_session_sticky` upstream; SESSIONS sessions.
#
#   restarted: both backends forget every session (a restart); each
#              session's next call heals in place
#   gone:      one backend stops; each of its sessions' next call heals
#              on the other
#   normal:    the call after a heal, in the new backend session
#
# Prints one JSON object: {restarted,gone,normal}_{median,p99}_us, counts.
# Usage: bench/heal.pl NGINX_MODULE [SESSIONS]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use McpSession::Nginx;
use McpSession::FakeMcp;
use McpSession::Http;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use Time::HiRes qw(time);

my ($module, $sessions) = @ARGV;
die "usage: $0 MODULE [SESSIONS]\n" unless $module;
$sessions ||= 200;
$ENV{MCP_SESSION_MODULE} = $module;

sub free_port {
    my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, ReuseAddr => 1) or die $!;
    my $port = $probe->sockport;
    close $probe;
    return $port;
}

my $dir = tempdir(CLEANUP => 1);
my @backends = map { McpSession::FakeMcp->start(port => free_port(), log => "$dir/b$_.log") } 1 .. 2;
my $servers = join '', map { '    server 127.0.0.1:' . $_->port . " max_fails=0;\n" } @backends;
my $n = McpSession::Nginx->new(
    servroot    => "$dir/nginx",
    port        => free_port(),
    workers     => 2,
    log_level   => 'warn',
    http_config => "mcp_session_zone zone=mcp:8m;\nupstream pool {\n$servers    mcp_session_sticky;\n}\n",
    config      => "location /mcp { mcp_session zone=mcp; mcp_session_mode issue; mcp_session_heal on; "
                 . "proxy_pass http://pool; }\nlocation = /status { mcp_session_status zone=mcp; }\n",
);
$n->start;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    . '"capabilities":{},"clientInfo":{"name":"heal-bench","version":"1"}}}';
my $call = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}';

sub post {
    my ($body, @headers) = @_;
    return $n->request('POST', '/mcp', headers => ['Content-Type' => 'application/json',
                                                   'Accept' => 'application/json, text/event-stream', @headers],
                       body => $body);
}

# Times one call of the session; dies unless it was answered 200.
sub timed_call {
    my ($sid) = @_;
    my $start = time;
    my $res = post($call, 'Mcp-Session-Id' => $sid);
    my $us = (time - $start) * 1e6;
    die "call of $sid: $res->{status} $res->{body}\n" unless $res->{status} == 200;
    return ($us, decode_json($res->{body})->{result}{replica});
}

sub percentile {
    my ($p, @values) = @_;
    my @sorted = sort { $a <=> $b } @values;
    return 0 unless @sorted;
    my $i = int($p * $#sorted + 0.5);
    return $sorted[$i];
}

sub counters { return decode_json($n->request('GET', '/status')->{body})->{counters} }

my %home;
for (1 .. $sessions) {
    my $res = post($initialize);
    die "initialize: $res->{status}\n" unless $res->{status} == 200;
    my $sid = $res->{headers}{'mcp-session-id'}[0];
    (undef, $home{$sid}) = timed_call($sid);
}

# Every backend forgets: each session's next call heals in place.
McpSession::Http::send_raw($_->port, "GET /control/forget HTTP/1.0\r\n\r\n") for @backends;
my $healed_before = counters()->{sessions_healed};
my (@restarted, @normal);
for my $sid (keys %home) {
    my ($us, $replica) = timed_call($sid);
    push @restarted, $us;
    $home{$sid} = $replica;
}
my $restart_heals = counters()->{sessions_healed} - $healed_before;
push @normal, (timed_call($_))[0] for keys %home;

# One backend stops: its sessions heal on the other.
my $victim = $backends[0]->port;
$backends[0]->stop;
$healed_before = counters()->{sessions_healed};
my @gone;
for my $sid (grep { $home{$_} == $victim } keys %home) {
    my ($us, $replica) = timed_call($sid);
    die "session $sid still on the stopped backend\n" if $replica == $victim;
    push @gone, $us;
}
my $gone_heals = counters()->{sessions_healed} - $healed_before;

my $alerts = () = $n->error_log =~ /\[(?:alert|crit|emerg)\]|exited on signal/g;
$n->stop;
my %out = (sessions => $sessions, restarted_heals => $restart_heals, gone_heals => $gone_heals, alerts => $alerts);
for (['restarted', \@restarted], ['gone', \@gone], ['normal', \@normal]) {
    $out{"$_->[0]_median_us"} = int(percentile(0.5, @{ $_->[1] }) + 0.5);
    $out{"$_->[0]_p99_us"} = int(percentile(0.99, @{ $_->[1] }) + 0.5);
}
print JSON::PP->new->canonical->encode(\%out), "\n";
