# The zone's session index under chains of several sessions a bucket
# (a small zone: 512 buckets for 900 sessions), with 2 workers: every
# session is found after others of its bucket are deleted and made again,
# and ids never issued, or deleted, are unknown. Each bucket keeps a
# filter of its chain's hashes; a deletion leaves its bit behind and a
# lookup that walks the chain in vain rewrites it, so this is where a
# filter that lost a live session's bit would answer 404.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;

my $sessions = 900;

my $n = start_nginx(
    workers     => 2,
    http_config => 'mcp_session_zone zone=mcp:256k;',
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
location = /status { mcp_session_status zone=mcp; }
CONF

my %pids;
sub create {
    my ($sid) = @_;
    my $res = $n->request('POST', "/mcp?sid=$sid", body => '{}');
    $pids{ $res->{headers}{'x-pid'}[0] // '' }++;
    return $res->{status};
}
sub use_session {
    my ($sid) = @_;
    my $res = $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{}');
    $pids{ $res->{headers}{'x-pid'}[0] // '' }++;
    return $res->{status};
}
sub remove {
    my ($sid) = @_;
    return $n->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $sid])->{status};
}
sub status { return decode_json($n->request('GET', '/status')->{body}) }
sub sid { return "index-session-$_[0]" }
sub deleted { return $_[0] % 3 == 0 }

# Statuses that differ from the expected one, as "id: got" (at most 5).
sub mismatches {
    my ($expect) = @_;
    my @wrong;
    for my $i (0 .. $sessions - 1) {
        my $got = use_session(sid($i));
        push @wrong, sid($i) . ": $got" if $got != $expect->($i);
    }
    return join(', ', @wrong[0 .. ($#wrong < 4 ? $#wrong : 4)]) . (@wrong > 5 ? ' ...' : '');
}

my @made = grep { create(sid($_)) != 200 } 0 .. $sessions - 1;
is(scalar(@made), 0, "$sessions sessions made");
is(mismatches(sub { 200 }), '', 'every session is found');

my @gone = grep { remove(sid($_)) != 200 } grep { deleted($_) } 0 .. $sessions - 1;
is(scalar(@gone), 0, 'a third of them deleted');
is(mismatches(sub { deleted($_[0]) ? 404 : 200 }), '', 'the rest are found beside their bucket\'s deleted ones');
my @unknown = grep { use_session("never-issued-$_") != 404 } 1 .. 300;
is(scalar(@unknown), 0, 'ids never issued are unknown');
is(mismatches(sub { deleted($_[0]) ? 404 : 200 }), '', 'and still, after lookups that walked chains in vain');

@made = grep { create(sid($_)) != 200 } grep { deleted($_) } 0 .. $sessions - 1;
is(scalar(@made), 0, 'the deleted ones made again');
is(mismatches(sub { 200 }), '', 'every session is found again');

my $status = status();
is($status->{sessions}, $sessions, 'the zone holds them all');
is($status->{counters}{evicted}, 0, 'none was evicted (the chains are what is tested)');
is(scalar(grep { $_ ne '' } keys %pids), 2, 'both workers served');

done_testing();
