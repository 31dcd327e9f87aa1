# Takeovers racing heartbeats: a newer GET takes a session's stream while
# the older stream's 1 ms heartbeat fires, in the same worker or from the
# other one. Every stream must end cleanly with exactly its own events, and
# no worker may die (under ./build.sh test-asan a use-after-free aborts the
# worker and its report lands in the error log).
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;

my $clients = 4;
my $takeovers = 150;  # per client: 600 takeovers in all

my $n = start_nginx(
    workers     => 2,
    log_level   => 'notice',
    http_config => 'mcp_session_zone zone=mcp:4m;',
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_stream_events seed;  # named markers, each carrying the stream's cursor
    mcp_session_heartbeat 1ms;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
CONF

my @workers_at_start = @{ $n->worker_pids };
is(scalar(@workers_at_start), 2, 'two workers');

sub stream_from {
    my ($sid, $last) = @_;
    return open_stream($n, 'GET', '/mcp',
        headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream', 'Last-Event-ID' => $last]);
}

# The events of a stream's text: [id, kind].
sub events_in {
    my ($text) = @_;
    my @events;
    while ($text =~ /id: (\d+)\nevent: (\w+)\ndata: [^\n]*\n\n/g) { push @events, [$1, $2] }
    return @events;
}

# What went wrong with one stream opened after `$last`, or '' when it got
# its init first, then only heartbeats, every one carrying the cursor
# `$last` (markers take no ids, and nothing is published here), and the
# final chunk.
sub fault_of {
    my ($text, $last) = @_;
    return 'no 200' unless $text =~ m{^HTTP/1.1 200 };
    return 'no final chunk' unless $text =~ /\r\n0\r\n\r\n$/;
    my @events = events_in($text);
    return 'no init first' unless @events && $events[0][1] eq 'init';
    for my $i (0 .. $#events) {
        my ($id, $kind) = @{ $events[$i] };
        return "$kind at $i" if $i > 0 && $kind ne 'heartbeat';
        return "id $id where the cursor $last was due" if $id != $last;
    }
    return '';
}

# One client: a session, then `$takeovers` times: the open stream is taken
# over by a new GET resuming after the old stream's init, and the old one
# is read to its end. Reports one line per fault, and the pids that served.
sub client {
    my ($c, $out) = @_;
    my $sid = "race-$c";
    my $res = $n->request('POST', "/mcp?sid=$sid", body => '{}');
    print {$out} "fault creating: $res->{status}\n" and return if $res->{status} != 200;
    my ($old, $old_last) = (stream_from($sid, 0), 0);
    my $head = $old->read_until(qr/event: init\n.*\n\n/, 10);
    for my $round (1 .. $takeovers) {
        my ($init) = $head =~ /id: (\d+)\nevent: init\n/;
        if (!defined $init) { print {$out} "fault round $round: the stream sent no init\n"; return }
        my ($pid) = $head =~ /\r\nX-Pid: (\d+)\r\n/i;
        print {$out} "pid $pid\n" if $pid;
        my $new = stream_from($sid, $init);
        my $new_head = $new->read_until(qr/event: init\n.*\n\n/, 10);
        my $fault = fault_of($old->read_until(qr/\r\n0\r\n\r\n$/, 10), $old_last);
        print {$out} "fault round $round: $fault\n" if $fault;
        $old->close;
        ($old, $old_last, $head) = ($new, $init, $new_head);
    }
    $old->close;
    print {$out} "done\n";
}

my @readers;
for my $c (1 .. $clients) {
    pipe(my $in, my $out) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $in;
        $out->autoflush(1);
        $n->{started_by_api} = 0;  # the child must not stop nginx on exit
        client($c, $out);
        close $out;
        exit 0;
    }
    close $out;
    push @readers, [$pid, $in];
}

my (@faults, %pids, $done);
for my $r (@readers) {
    my ($pid, $in) = @$r;
    while (my $line = <$in>) {
        if ($line =~ /^fault (.*)/) { push @faults, $1 }
        elsif ($line =~ /^pid (\d+)/) { $pids{$1}++ }
        elsif ($line =~ /^done/) { $done++ }
    }
    waitpid $pid, 0;
}

is($done, $clients, "every client finished its $takeovers takeovers");
is(scalar(@faults), 0, 'every stream got its events in order, its init, and a clean end')
    or diag(join "\n", @faults[0 .. ($#faults < 9 ? $#faults : 9)]);
is(scalar(keys %pids), 2, 'streams were served by both workers');
is_deeply($n->worker_pids, \@workers_at_start, 'no worker died');
my $log = $n->error_log;
unlike($log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit|emerg)\]/, 'no sanitizer report, crash or alert');
$n->stop;
done_testing();
