# The state directory is writable by the worker user, so anything running
# as that user can plant files in it (issue 10, items 11-13): symlinks at
# PATH, PATH.lock and PATH.tmp.* are never followed, a FIFO or a held lock
# never hangs nginx, and the file's contents are believed only when
# authenticated with the key file and within bounds. Cases that need root
# (other owners, `user nobody`) skip with a message otherwise.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Digest::SHA qw(hmac_sha256);
use Fcntl qw(:flock O_WRONLY O_NONBLOCK S_IMODE);
use File::Temp qw(tempdir);
use POSIX qw(mkfifo);
use Test::More;

my $root = $> == 0;
my ($nobody, $nobody_gid) = (getpwnam('nobody'))[2, 3];
my $worker_user = defined $nobody ? 'nobody ' . (getgrgid($nobody_gid) // $nobody_gid) : '';
my $base = tempdir(CLEANUP => 1);
chmod 0755, $base;

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /publish { mcp_session_publish zone=mcp; }
CONF

# A state directory of its own per case; owned by the worker user when
# nginx runs as `user nobody`.
my $dirs = 0;
sub state_dir {
    my ($owner) = @_;
    my $dir = "$base/state" . ++$dirs;
    mkdir $dir, 0755 or die "$dir: $!";
    chown $owner, -1, $dir if defined $owner;
    return $dir;
}
sub zone_line { my ($state, $extra) = @_; return "mcp_session_zone zone=mcp:1m state=$state " . ($extra // '') . ';' }
sub create { my ($n, $sid) = @_; return $n->request('POST', "/mcp?sid=$sid", body => '{"jsonrpc":"2.0","method":"notifications/message","params":{}}', timeout => 3) }
sub status_of { my ($n, $sid) = @_; return $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid], body => '{"jsonrpc":"2.0","method":"notifications/message","params":{}}', timeout => 3)->{status} // 0 }
sub slurp { my ($path) = @_; open my $fh, '<:raw', $path or return; local $/; my $b = <$fh>; return $b }
sub spew {
    my ($path, $bytes, $mode, $owner) = @_;
    open my $fh, '>:raw', $path or die "$path: $!";
    print {$fh} $bytes;
    close $fh;
    chmod $mode // 0600, $path;
    chown $owner, -1, $path if defined $owner;
}
sub count { my ($text, $re) = @_; my $n = () = $text =~ /$re/g; return $n }
sub identity { my ($path) = @_; my @st = lstat $path or return ''; return join ':', $st[4], S_IMODE($st[2]), slurp($path) // '' }

# Starts nginx, failing (not hanging) when the master blocks at start.
sub start_within {
    my (%args) = @_;
    my $n;
    my $ok = eval {
        local $SIG{ALRM} = sub { die "nginx did not start within 20s\n" };
        alarm 20;
        $n = start_nginx(%args);
        alarm 0;
        1;
    };
    alarm 0;
    diag($@) unless $ok;
    return $ok ? $n : undef;
}

# ------------------------------------------------------------ the format
# Records as the writer lays them out (header 40 bytes; each record five
# 64-bit fields, bound, id form, id size, a two-byte backend id size, a
# pinned server size, the id, the backend id, the pinned server), so a
# test can plant exactly one changed field.
# Version 1 files carried a public FNV-1a checksum; later ones an
# HMAC-SHA-256 keyed by PATH.key.
sub records {
    my ($bytes) = @_;
    my ($count) = unpack 'Q<', substr($bytes, 32, 8);
    my (%at, $pos);
    $pos = 40;
    for (1 .. $count) {
        my ($idsz, $bsz, $psz) = unpack 'CvC', substr($bytes, $pos + 42, 4);
        $at{ substr($bytes, $pos + 46, $idsz) } = $pos;
        $pos += 46 + $idsz + $bsz + $psz;
    }
    return \%at;
}
sub version { unpack 'V', substr($_[0], 8, 4) }
sub fnv1a { my ($bytes) = @_; use integer; my $h = 1469598103934665603; $h = ($h ^ $_) * 1099511628211 for unpack 'C*', $bytes; return pack 'q<', $h }
# Signs as the key holder would (the file's own nginx).
sub signed {
    my ($bytes, $key) = @_;
    return version($bytes) == 1 ? substr($bytes, 0, -8) . fnv1a(substr($bytes, 0, -8))
                                : substr($bytes, 0, -32) . hmac_sha256(substr($bytes, 0, -32), $key);
}
# What a process of the worker user can do: edit the bytes and recompute
# whatever it can (the public checksum, but no MAC without the key).
sub forged {
    my ($bytes) = @_;
    return version($bytes) == 1 ? signed($bytes) : substr($bytes, 0, -32) . hmac_sha256(substr($bytes, 0, -32), 'not the key');
}
sub set_u64 { my ($bytes, $at, $value) = @_; substr($bytes, $at, 8) = pack 'Q<', $value; return $bytes }

# A saved file with sessions "keep" and "streamy" (3 events published).
sub make_saved {
    my ($state, %args) = @_;
    my $n = start_nginx(workers => 2, http_config => zone_line($state), config => $locations, %args);
    create($n, $_) for qw(keep streamy);
    $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => 'streamy'], body => '{"jsonrpc":"2.0","method":"notifications/message","params":{}}') for 1 .. 3;
    $n->stop;
    return slurp($state);
}

# ------------------------------------------------------------ item 13: contents
{
    my $dir = state_dir();
    my $state = "$dir/mcp.state";
    my $saved = make_saved($state);
    ok(defined $saved && length $saved > 40, 'contents: nginx saved a state file');
    my $key = slurp("$state.key") // '';
    my $at = records($saved);
    ok(exists $at->{keep} && exists $at->{streamy}, 'contents: both sessions are in it');

    # Files the key holder could have signed, each with one field out of
    # bounds: refused with one line, the zone starts empty and works.
    my %bad = (
        'event id 18446744073709551615 out of bounds' => set_u64($saved, $at->{streamy} + 16, 2**64 - 1),
        'times out of bounds (created near INT64_MAX)' =>
            set_u64(set_u64($saved, $at->{keep}, 9223372036854775000), $at->{keep} + 8, 9223372036854775800),
        'times out of bounds (future last access)' =>
            set_u64($saved, $at->{keep} + 8, unpack('Q<', substr($saved, 24, 8)) + 3600 * 1000),
    );
    for my $why (sort keys %bad) {
        my ($reason) = $why =~ /^(.*?)(?: \(|$)/;
        spew($state, signed($bad{$why}, $key));
        my $n = start_nginx(workers => 2, http_config => zone_line($state), config => $locations);
        my $log = $n->error_log;
        is(count($log, qr/state file "\Q$state\E" is unusable/), 1, "bounds ($why): one line") or diag($log =~ /(.*unusable.*|.*restored.*)/g);
        like($log, qr/\[error\].*state file "\Q$state\E" is unusable \(record \d+: \Q$reason\E\); starting with an empty zone/,
            "bounds ($why): refused for that reason");
        is(status_of($n, 'keep'), 404, "bounds ($why): nothing restored");
        is($n->request('POST', '/publish', headers => ['Mcp-Session-Id' => 'streamy'], body => '{"jsonrpc":"2.0","method":"notifications/message","params":{}}')->{status}, 404,
            "bounds ($why): no stream goes on from the planted counter");
        is(create($n, 'fresh')->{status}, 200, "bounds ($why): the zone works");
        $n->stop;
    }

    # Wrong mode (and, as root, wrong owner): refused before it is read.
    my $refused = sub {
        my ($mode, $owner, $re, $what) = @_;
        spew($state, $saved, $mode, $owner);
        my $n = start_nginx(workers => 2, http_config => zone_line($state), config => $locations);
        my $log = $n->error_log;
        is(count($log, qr/state file "\Q$state\E" is unusable/), 1, "owner/mode ($what): one line");
        like($log, qr/is unusable \([^)]*$re/, "owner/mode ($what): refused for that reason");
        is(status_of($n, 'keep'), 404, "owner/mode ($what): nothing restored");
        $n->stop;
    };
    $refused->(0644, undef, qr/mode 0644/, 'mode 0644');
    $refused->(0640, undef, qr/mode 0640/, 'mode 0640');
    SKIP: {
        skip 'not root: a state file of another owner cannot be made', 3 unless $root && defined $nobody;
        $refused->(0600, $nobody, qr/owned by uid $nobody, not 0/, 'owned by nobody');
    }

    # An altered byte, and a planted record with the checksum recomputed:
    # neither has a valid MAC.
    my $planted = $saved;
    substr($planted, $at->{keep} + 46, 4) = 'plnt';
    for my $case (['altered byte', do { my $b = $saved; substr($b, $at->{keep} + 46, 1) ^= "\x01"; $b }],
                  ['planted record', forged($planted)]) {
        my ($what, $bytes) = @$case;
        spew($state, $bytes);
        my $n = start_nginx(workers => 2, http_config => zone_line($state), config => $locations);
        my $log = $n->error_log;
        is(count($log, qr/state file "\Q$state\E" is unusable/), 1, "mac ($what): one line");
        like($log, qr/is unusable \(authentication failed/, "mac ($what): refused as not authenticated");
        is(status_of($n, 'plnt'), 404, "mac ($what): the planted session does not exist");
        is(status_of($n, 'keep'), 404, "mac ($what): nothing of the file was believed");
        $n->stop;
    }

    # A record planted while nginx runs (adopted within state_interval
    # before): refused with one line, the zone's own sessions intact, the
    # next save puts nginx's own file back.
    {
        unlink $state;
        my $n = start_nginx(workers => 2, http_config => zone_line($state, 'state_interval=300ms'), config => $locations);
        create($n, 'keep');
        my $own = poll_until(10, sub { my $b = slurp($state) // ''; $b =~ /keep/ ? $b : '' });
        ok($own, 'planted while running: nginx saved its session');
        my $p = $own;
        my $r = records($p);
        substr($p, $r->{keep} + 46, 4) = 'plnt';
        spew("$state.new", forged($p));
        rename "$state.new", $state or die "rename: $!";
        ok($n->wait_for_log(qr/state file "\Q$state\E" is unusable \(authentication failed/, 10),
            'planted while running: refused');
        my $after = poll_until(10, sub { my $b = slurp($state) // ''; $b =~ /keep/ ? $b : '' });
        # One more save after that, so a repeated complaint would show.
        my $mtime = (stat $state)[9];
        poll_until(10, sub { my $b = slurp($state) // ''; $b ne $after || (stat $state)[9] != $mtime });
        is(count($n->error_log, qr/is unusable/), 1, 'planted while running: exactly one log line');
        is(status_of($n, 'plnt'), 404, 'planted while running: the planted session was not adopted');
        is(status_of($n, 'keep'), 200, "planted while running: the zone's own session is intact");
        unlike(slurp($state) // '', qr/plnt/, 'planted while running: the next save replaced the planted file');
        $n->stop;
    }
}

# ------------------------------------------------------------ item 12: FIFO, held lock
{
    my $dir = state_dir();
    my $state = "$dir/mcp.state";
    mkfifo($state, 0600) or die "mkfifo: $!";
    my $n = start_within(workers => 2, http_config => zone_line($state, 'state_interval=300ms'), config => $locations);
    ok($n, 'fifo at PATH: nginx starts (the master does not wait on the FIFO)');
    SKIP: {
        skip 'nginx did not start', 4 unless $n;
        is(create($n, 'after-fifo')->{status}, 200, 'fifo at PATH: requests are answered');
        like($n->error_log, qr/state file "\Q$state\E" is unusable \(not a regular file\); starting with an empty zone/,
            'fifo at PATH: refused with one line');
        ok(poll_until(10, sub { -f $state && (slurp($state) // '') =~ /after-fifo/ }),
            'fifo at PATH: the next save replaced it with a state file');
        is(status_of($n, 'after-fifo'), 200, 'fifo at PATH: every worker still answers');
        $n->stop;
    }
    # A blocked master is released so it cannot outlive the test.
    if (!$n && -p $state) { sysopen(my $w, $state, O_WRONLY | O_NONBLOCK) }
}

{
    my $dir = state_dir();
    my $state = "$dir/mcp.state";
    my $holder = fork // die "fork: $!";
    # Its own process group: flock(1) passes the locked descriptor to sleep.
    if ($holder == 0) { setpgrp(0, 0); exec 'flock', "$state.lock", 'sleep', '999' or POSIX::_exit(127) }
    ok(poll_until(10, sub {
        open my $fh, '<', "$state.lock" or return 0;
        my $free = flock($fh, LOCK_EX | LOCK_NB);
        close $fh;
        !$free;
    }), 'held lock: another process holds PATH.lock');
    my $n = start_within(workers => 2, http_config => zone_line($state, 'state_interval=300ms'), config => $locations);
    ok($n, 'held lock: nginx starts');
    SKIP: {
        skip 'nginx did not start', 5 unless $n;
        is(create($n, 'while-held')->{status}, 200, 'held lock: session created');
        ok($n->wait_for_log(qr/\[warn\].*state file "\Q$state\E" not saved: "mcp\.state\.lock" is locked by another process; skipped/, 10),
            'held lock: the save is skipped with a log line');
        # Both workers answer while saves keep being skipped.
        my @codes = map { status_of($n, 'while-held') } 1 .. 10;
        is("@codes", join(' ', (200) x 10), 'held lock: every request is answered');
        kill 'TERM', -$holder;
        waitpid $holder, 0;
        ok(poll_until(10, sub { (slurp($state) // '') =~ /while-held/ }), 'held lock: saved once the lock is free');
        $n->stop;
        like($n->error_log, qr/state saved to "\Q$state\E"/, 'held lock: the exit save ran');
    }
    if (kill 0, -$holder) { kill 'TERM', -$holder; waitpid $holder, 0 }
}

# ------------------------------------------------------------ item 11: symlinks (root)
SKIP: {
    skip 'not root: symlinks to root-owned files and `user nobody` need root', 1 unless $root && defined $nobody;
    my $secret = tempdir(CLEANUP => 1);  # root-only, 0700
    my %victim = map { $_ => "$secret/$_" } qw(for-lock for-tmp for-state);
    spew($_, "root's own file\n", 0600) for values %victim;
    my $good = make_saved("$secret/good.state");  # a real state file, root-only
    spew($victim{'for-state'}, $good, 0600);
    my %before = map { $_ => identity($victim{$_}) } keys %victim;

    my $dir = state_dir($nobody);
    my $state = "$dir/mcp.state";
    symlink $victim{'for-state'}, $state or die "symlink: $!";
    symlink $victim{'for-lock'}, "$state.lock" or die "symlink: $!";
    my $n = start_nginx(workers => 2, user => $worker_user, http_config => zone_line($state), config => $locations);
    like($n->error_log, qr/state file "\Q$state\E" is unusable \(a symbolic link\); starting with an empty zone/,
        'symlink at PATH: not followed at start');
    is(status_of($n, 'keep'), 404, "symlink at PATH: the link target's sessions were not restored");
    # The exit save's temporary: once it was PATH.tmp.<master pid>.
    symlink $victim{'for-tmp'}, "$state.tmp." . $n->master_pid or die "symlink: $!";
    symlink $victim{'for-tmp'}, "$state.tmp.$_" for @{ $n->worker_pids };
    create($n, 'mine');
    $n->stop;
    like($n->error_log, qr/state saved to "\Q$state\E"/, 'symlinks: the exit save still ran');
    like($n->error_log, qr/"\Q$state\E\.lock" was not a lock file of the worker user; replaced it/,
        'symlink at PATH.lock: removed and replaced, one line');
    for my $v (sort keys %victim) {
        is(identity($victim{$v}), $before{$v}, "symlink $v: the root-owned target kept its owner, mode and content");
    }
    ok(!-l $state && -f $state, 'symlink at PATH: replaced by the saved file, not written through');
    is((lstat $state)[4], $nobody, 'exit save: owned by the worker user (written through the descriptor)');
    is((lstat "$state.lock")[4], $nobody, 'lock file: owned by the worker user');
    my @key = lstat "$state.key";
    is("$key[4]:" . sprintf('%04o', S_IMODE($key[2])), '0:0600', 'key file: root-owned, mode 0600');
}

# ------------------------------------------------------------ key file (root)
SKIP: {
    skip 'not root: a key file of the worker user cannot be planted', 4 unless $root && defined $nobody;
    my $dir = state_dir($nobody);
    my $state = "$dir/mcp.state";
    my $saved = make_saved($state, user => $worker_user);
    # The worker user replaces the key with one it knows and signs a file.
    my $known = 'k' x 32;
    unlink "$state.key";
    spew("$state.key", $known, 0600, $nobody);
    my $p = $saved;
    substr($p, records($p)->{keep} + 46, 4) = 'plnt';
    spew($state, signed($p, $known), 0600, $nobody);
    my $n = start_nginx(workers => 2, user => $worker_user, http_config => zone_line($state), config => $locations);
    like($n->error_log, qr/state key file "\Q$state\E\.key" is not trustworthy \(owned by uid $nobody, not 0\); replacing it/,
        'planted key: refused');
    like($n->error_log, qr/is unusable \(authentication failed/, 'planted key: the file signed with it is refused');
    is(status_of($n, 'plnt'), 404, 'planted key: nothing adopted');
    isnt(slurp("$state.key"), $known, 'planted key: replaced by a new key');
    $n->stop;
}

# ------------------------------------------------------------ binary upgrade under `user nobody` (root)
SKIP: {
    skip 'not root: `user nobody` needs root', 3 unless $root && defined $nobody;
    my $dir = state_dir($nobody);
    my $state = "$dir/mcp.state";
    my $n = start_nginx(workers => 2, user => $worker_user, http_config => zone_line($state, 'state_interval=300ms'),
        config => $locations);
    create($n, 'before-upgrade');
    poll_until(10, sub { (slurp($state) // '') =~ /before-upgrade/ });
    my $old_master = $n->master_pid;
    my %old_workers = map { $_ => 1 } @{ $n->worker_pids };
    kill 'USR2', $old_master;
    poll_until(10, sub { -e $n->servroot . '/logs/nginx.pid.oldbin' && ($n->master_pid // $old_master) != $old_master && @{ $n->worker_pids } == 2 });
    my $made_by_old = 0;
    my @sids = ('before-upgrade');
    for my $i (1 .. 8) {
        my $res = create($n, "upgrade-$i");
        push @sids, "upgrade-$i";
        $made_by_old++ if $old_workers{ $res->{headers}{'x-pid'}[0] // 0 };
    }
    kill 'QUIT', $old_master;
    poll_until(10, sub { !McpSession::Nginx::alive($old_master) });
    my @lost = @sids;
    poll_until(10, sub { @lost = grep { status_of($n, $_) != 200 } @lost; !@lost });
    is("@lost", '', "upgrade as nobody: every session is valid in the new nginx ($made_by_old made by the old one)");
    unlike($n->error_log, qr/is unusable/, "upgrade as nobody: the old master's exit save was readable by the new workers");
    $n->restart;
    @lost = grep { status_of($n, $_) != 200 } @sids;
    is("@lost", '', 'upgrade as nobody: a restart (master as root reading the worker-owned file) restores them all');
    $n->stop;
}

unlike(join('', map { slurp($_) // '' } glob(McpSession::TestNginx::servroot() . '/logs/error.log')),
    qr/\[(alert|crit)\]|exited on signal/, 'no alert, crit or crash in the error log');

done_testing;
