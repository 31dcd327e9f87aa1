# A worker killed with SIGKILL in the middle of traffic (open streams,
# publishes running) leaves no stuck lock and no lost session: the
# master's respawned worker serves every session, and a stream that was
# cut resumes from the ring with every accepted event, in order, once.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use POSIX ();
use Time::HiRes qw(time);
use Test::More;

my $rounds = 6;

my $n = start_nginx(
    workers     => 2,
    log_level   => 'notice',
    http_config => 'mcp_session_zone zone=mcp:4m buffer=4096;',
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_stream_events seed;  # init: a stream's first bytes, to wait for
    mcp_session_heartbeat off;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /publish { mcp_session_publish zone=mcp; }
location = /status { mcp_session_status zone=mcp; }
CONF

sub use_session { $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $_[0]], body => '{}', timeout => 5) }
sub stream_from {
    my ($sid, $last) = @_;
    return open_stream($n, 'GET', '/mcp',
        headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream', 'Last-Event-ID' => $last]);
}
sub message_ids { my ($text) = @_; return map { $_ + 0 } $text =~ /id: (\d+)\nevent: message\n/g }

my @sessions = map { "crash-$_" } 1 .. 50;
is($n->request('POST', "/mcp?sid=$_", body => '{}')->{status}, 200, "$_ created") for @sessions[0 .. 1];
$n->request('POST', "/mcp?sid=$_", body => '{}') for @sessions[2 .. $#sessions];

my %accepted;  # event id => 1, for every publish nginx answered 202
my %victims;   # pid => 1, every worker the test killed
my @seen;      # message ids the client received, in order, over all its streams
my $last_seen = 0;

# One event the first stream reads, so the client always resumes with an
# explicit Last-Event-ID (0 would mean "what no stream sent yet", and the
# kills below leave sent-but-unread events in the old streams' sockets).
my $opening = $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => 'crash-1'], body => '{"jsonrpc":"2.0","method":"notifications/message","params":{"r":0}}');
is($opening->{body}, '{"id":1}', 'the opening event is id 1');
$accepted{1} = 1;

for my $round (1 .. $rounds) {
    my $s = stream_from('crash-1', $last_seen);
    $s->read_until($round == 1 ? qr/id: 1\nevent: message\n[^\n]*\n\n/ : qr/event: init\n[^\n]*\n\n/, 5);

    # A publisher runs while a worker is killed: it forks so the kill lands
    # in the middle of its requests; each 202 names an id the client must get.
    pipe(my $reader, my $writer) or die "pipe: $!";
    my $child = fork // die "fork: $!";
    if ($child == 0) {
        close $reader;
        for my $i (1 .. 40) {
            my $res = eval { $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => 'crash-1'], body => qq({"jsonrpc":"2.0","method":"notifications/message","params":{"r":$round,"i":$i}}), timeout => 3) };
            print {$writer} "$1\n" if $res && $res->{status} == 202 && $res->{body} =~ /"id":(\d+)/;
        }
        close $writer;
        POSIX::_exit(0);  # no destructors: the parent's nginx object must not stop nginx
    }
    close $writer;
    my @before = @{ $n->worker_pids };
    my $victim = $before[$round % @before];
    $victims{$victim} = 1;
    kill 'KILL', $victim;
    my @ids = <$reader>;
    waitpid $child, 0;
    chomp @ids;
    $accepted{$_} = 1 for @ids;

    my @after;
    poll_until(10, sub { (@after = @{ $n->worker_pids }) == 2 && !grep { $_ == $victim } @after });
    ok(@after == 2 && !grep({ $_ == $victim } @after), "round $round: the master respawned worker $victim");

    # Whatever the stream got before the kill counts; then it resumes.
    my $text = $s->data;
    $s->close;
    for my $id (message_ids($text)) { push @seen, $id if $id > $last_seen; $last_seen = $id if $id > $last_seen }
    my $resumed = stream_from('crash-1', $last_seen);
    my $newest = (sort { $b <=> $a } keys %accepted)[0] // 0;
    $resumed->read_until(qr/id: \Q$newest\E\nevent: message\n/, 5) if $newest > $last_seen;
    for my $id (message_ids($resumed->data)) { push @seen, $id if $id > $last_seen; $last_seen = $id if $id > $last_seen }
    $resumed->close;

    my $failed = grep { use_session($_)->{status} != 200 } @sessions;
    is($failed, 0, "round $round: every session is still valid in both workers");
}

my %got = map { $_ => 1 } @seen;
my @missing = grep { !$got{$_} } sort { $a <=> $b } keys %accepted;
is(scalar(@missing), 0, 'every accepted event reached the client') or diag("missing: @missing");
my %dup;
is(scalar(grep { $dup{$_}++ } @seen), 0, 'no event reached it twice');
is_deeply(\@seen, [sort { $a <=> $b } @seen], 'in id order');
cmp_ok(scalar(keys %accepted), '>', $rounds * 10, 'publishes kept being accepted around the kills');

my $status = $n->request('GET', '/status')->{body};
like($status, qr/"sessions":50,/, 'the zone still counts all 50 sessions');

# A stream whose worker dies and whose client never comes back: the
# respawned worker releases it, so the status stops counting it.
{
    my ($orphan, $holder);
    for my $i (1 .. 100) {
        $n->request('POST', "/mcp?sid=orphan-$i", body => '{}');
        my $s = stream_from("orphan-$i", 0);
        my ($pid) = $s->read_until(qr/event: init\n.*\n\n/s, 5) =~ /^X-Pid: (\d+)\r?$/mi;
        if ($pid) { ($orphan, $holder) = ($s, $pid); last }
        $s->close;
    }
    ok($holder, 'orphan: a stream is open');
    my $open = sub { ($n->request('GET', '/status')->{body} =~ /"open_streams":(\d+)/)[0] };
    is($open->(), 1, 'orphan: the status counts it');
    $victims{$holder} = 1;
    kill 'KILL', $holder;
    poll_until(10, sub { ($open->() // -1) == 0 });
    is($open->(), 0, 'orphan: once its worker is respawned the stream is no longer counted');
    ok($n->wait_for_log(qr/worker \d+ replaces process \Q$holder\E, which died; released its 1 streams/, 10),
       'orphan: the respawned worker says it released the dead process\'s stream');
    $orphan->close;
}

# The master's own recovery is expected: it reports the kill, and frees
# the zone's lock if a victim died holding it.
my @alerts = grep {
    !(/worker process (\d+) exited on signal 9/ && $victims{$1})
    && !(/shared memory zone "mcp" was locked by (\d+)/ && $victims{$1})
} grep { /\[(alert|crit|emerg)\]/ } split /\n/, $n->error_log;
is(scalar(@alerts), 0, 'no alert besides the master recovering from the killed workers') or diag(join "\n", @alerts);
unlike($n->error_log, qr/exited on signal (?!9)\d+/, 'no worker died of anything but the test\'s SIGKILL');

$n->stop;
done_testing;
