# Periodic state saves (issue 11): the zone is copied in slices of 512
# sessions, one zone-lock hold each, and the file is written by a thread of
# nginx's pool "default", off the event loop. What a save promises: every
# session alive when it started and still alive when its slice was copied;
# none deleted before its slice was copied. Sessions created meanwhile are
# in it or in the next one. Two workers throughout; restarts after SIGKILL
# (no exit save) show what the periodic saves themselves hold.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use File::Temp qw(tempdir);
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

sub zone_line { my ($interval) = @_; return "mcp_session_zone zone=mcp:8m idle_timeout=1h state=$state state_interval=$interval;" }
sub create { my ($n, $sid) = @_; return $n->request('POST', "/mcp?sid=$sid", body => '{}')->{status} }
sub use_session { my ($n, $sid) = @_; return $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{}')->{status} }
sub delete_session { my ($n, $sid) = @_; return $n->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $sid])->{status} }

# The periodic saves the error log reports, in order: [sessions, slices].
sub saves {
    my ($n) = @_;
    my @saves;
    my $log = $n->error_log;
    while ($log =~ /state saved to "\Q$state\E": (\d+) sessions, \d+ bytes, (\d+) slices \(longest lock hold \d+ us, mean \d+ us\), written by thread pool "default"/g) {
        push @saves, [$1, $2];
    }
    return @saves;
}

# Waits until `$more` saves have completed after the `$before` seen so far:
# the first of them may have started before the caller's last change, the
# second started after it.
sub wait_for_saves {
    my ($n, $before, $more) = @_;
    return poll_until(20, sub { saves($n) >= $before + $more });
}

# SIGKILL of every process: no exit save, the periodic file is what is left.
# Returns what the restarted nginx logged.
sub crash_and_restart {
    my ($n) = @_;
    my $from = length $n->error_log;
    my @killed = ($n->master_pid, @{ $n->worker_pids });
    kill 'KILL', $_ for @killed;
    poll_until(5, sub { !grep { McpSession::Nginx::alive($_) } @killed });
    unlink $n->servroot . '/logs/nginx.pid';
    $n->restart;
    return substr($n->error_log, $from);
}

sub all_status {
    my ($n, $want, @sids) = @_;
    my @wrong = grep { use_session($n, $_) != $want } @sids;
    return scalar @wrong;
}

my $n = start_nginx(workers => 2, log_level => 'info', http_config => zone_line('100ms'), config => $locations);

# A save larger than one slice: complete, written by the thread pool, and
# what a restart after a crash restores.
my @base = map { "base-$_" } 1 .. 3000;
my @failed = grep { create($n, $_) != 200 } @base;
is(scalar @failed, 0, '3000 sessions created');
ok(poll_until(20, sub { grep { $_->[0] == 3000 } saves($n) }), 'a periodic save wrote all 3000 sessions');
my ($full) = grep { $_->[0] == 3000 } saves($n);
cmp_ok($full ? $full->[1] : 0, '>=', 3, '... copied in at least 3 slices (512 sessions per lock hold)');
like($n->error_log, qr/written by thread pool "default"/, '... and written by a thread of pool "default", not the event loop');

like(crash_and_restart($n), qr/restored 3000 sessions from "\Q$state\E"/, 'after SIGKILL of every process: 3000 sessions restored');
is(all_status($n, 200, @base), 0, '... every one of them valid');

# Deletions and creations while saves run (every 100 ms, several slices
# each): the deleted never come back, the created are in a later save.
my @deleted = @base[0 .. 499];
my @created = map { "new-$_" } 1 .. 500;
my $before = saves($n);
for my $i (0 .. 499) {
    delete_session($n, $deleted[$i]);
    create($n, $created[$i]);
}
ok(saves($n) > $before, 'saves ran while sessions were deleted and created') or diag('no save during the changes');
ok(wait_for_saves($n, scalar saves($n), 2), 'two more saves completed after the last change');
like(crash_and_restart($n), qr/restored 3000 sessions from "\Q$state\E"/, 'restored 3000: 2500 kept, 500 created during saves');
is(all_status($n, 404, @deleted), 0, 'no session deleted during the saves came back');
is(all_status($n, 200, @created), 0, 'every session created during the saves was kept');
is(all_status($n, 200, @base[500 .. 2999]), 0, 'every session alive throughout was kept');

# Workers exiting mid-save: saves back to back (every millisecond), a
# reload, then a quit. No save is left half-done or holding the lock, the
# master's exit save is the last word (a write still running in an exiting
# worker cannot replace it: the lock is held until its rename is done), and
# sessions made just before the quit are restored.
$n->{http_config} = zone_line('1ms');
ok($n->reload, 'reload with state_interval=1ms');
my $saves_now = saves($n);
ok(wait_for_saves($n, $saves_now, 3), 'the new workers save back to back');
ok($n->reload, 'reload while they save');
ok(wait_for_saves($n, scalar saves($n), 3), 'the newest workers save again after the old ones left mid-save');
my @last = map { "last-$_" } 1 .. 50;
is(scalar(grep { create($n, $_) != 200 } @last), 0, '50 sessions created right before the quit');
my $log_before = length $n->error_log;
$n->stop;
my $exit_log = substr($n->error_log, $log_before);
like($exit_log, qr/\[notice\].*state saved to "\Q$state\E"$/m, 'the master saved at exit');
unlike($exit_log, qr/not saved at exit/, '... without waiting in vain for a lock a worker kept');
$n->{http_config} = zone_line('1h');
$log_before = length $n->error_log;
$n->restart;
like(substr($n->error_log, $log_before), qr/restored 3050 sessions from "\Q$state\E"/, 'restart: 3050 sessions restored');
is(all_status($n, 200, @last), 0, 'the sessions created right before the quit were in the exit save');
is(all_status($n, 404, @deleted), 0, 'the deleted ones still stay deleted');
diag('saves abandoned by exiting workers: ' . (() = $n->error_log =~ /state save abandoned after/g));
$n->stop;

unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal|already active/,
    'no alert, crit or crash in the error log');

# A large zone holding few sessions: its index (a bucket per 512 bytes,
# 131072 in 64 MB) is walked a bounded number of buckets per lock hold,
# so the save takes several slices, and loses nothing between them.
{
    my $big_state = "$dir/big.state";
    my $line = "mcp_session_zone zone=mcp:64m idle_timeout=1h state=$big_state state_interval=100ms;";
    my $b = start_nginx(workers => 2, log_level => 'info', http_config => $line, config => $locations);
    my @few = map { "few-$_" } 1 .. 40;
    is(scalar(grep { create($b, $_) != 200 } @few), 0, 'large zone: 40 sessions created');
    my $saved = sub {
        my @s;
        my $log = $b->error_log;
        while ($log =~ /state saved to "\Q$big_state\E": (\d+) sessions, \d+ bytes, (\d+) slices/g) { push @s, [$1, $2] }
        return grep { $_->[0] == 40 } @s;
    };
    ok(poll_until(20, sub { $saved->() }), 'large zone: a save wrote all 40 sessions');
    my ($save) = $saved->();
    cmp_ok($save ? $save->[1] : 0, '>=', 2, '... in at least 2 slices (65536 buckets per lock hold)');
    my $from = length $b->error_log;
    my @killed = ($b->master_pid, @{ $b->worker_pids });
    kill 'KILL', $_ for @killed;
    poll_until(5, sub { !grep { McpSession::Nginx::alive($_) } @killed });
    unlink $b->servroot . '/logs/nginx.pid';
    $b->restart;
    like(substr($b->error_log, $from), qr/restored 40 sessions from "\Q$big_state\E"/, 'large zone: 40 restored after SIGKILL');
    is(scalar(grep { use_session($b, $_) != 200 } @few), 0, '... every one valid');
    $b->stop;
    unlike($b->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'large zone: clean error log');
}

done_testing;
