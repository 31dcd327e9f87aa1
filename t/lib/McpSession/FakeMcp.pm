package McpSession::FakeMcp;
# A stateful MCP backend in one forked Perl process, for the suites that
# need a backend that keeps sessions in memory and can lose them: an
# initialize makes a session "PORT-N", notifications/initialized is 202,
# any other request of a known session is answered with the replica's
# port and the session it ran in (as an SSE stream of a progress event and
# the result when it calls the tool "stream"); an unknown session gets the SDK's 404
# (or, with lost => 400, server-everything's 400). Every MCP request is
# logged, one JSON line each ({sid, body}), so a test sees exactly what
# the backend received. GET /control/forget drops every session (a
# restart without the process going away); /control/refuse and
# /control/accept make initialize answer 503 or work again, and
# /control/truncate makes the next initialize answer stop mid-body.
use strict;
use warnings;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();

my $sdk_404 = '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}';
my $everything_400 = '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}';

# %args: port, log (file), lost (404 or 400; 404 when absent)
sub start {
    my ($class, %args) = @_;
    my $self = bless {%args}, $class;
    $self->{lost} //= 404;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $self->{port}, Listen => 64,
                                       ReuseAddr => 1)
        or die "listen on $self->{port}: $!\n";
    $self->{get} //= 405;
    open my $touch, '>>', "$self->{log}.notify" or die "$self->{log}.notify: $!\n";
    close $touch;
    my $pid = fork // die "fork: $!\n";
    if ($pid) {
        close $listen;
        $self->{pid} = $pid;
        return $self;
    }
    setpgrp(0, 0);  # stop() ends the stream holders with the server
    $SIG{PIPE} = 'IGNORE';
    $SIG{CHLD} = 'IGNORE';
    $SIG{TERM} = 'IGNORE';  # /control/drop signals the whole group
    $self->serve($listen);
    POSIX::_exit(0);
}

sub port { $_[0]{port} }

# The requests the backend received so far, in order: [{sid, body}, ...].
sub received {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return [];
    my @lines = map { JSON::PP::decode_json($_) } grep { /\S/ } <$fh>;
    close $fh;
    return \@lines;
}

# The backend's stream GETs so far: [{event, sid, last_event_id}, ...].
sub gets {
    my ($self) = @_;
    open my $fh, '<', "$self->{log}.get" or return [];
    my @lines = map { JSON::PP::decode_json($_) } grep { /\S/ } <$fh>;
    close $fh;
    return \@lines;
}

# Queues a log message for the held stream of backend session $sid.
sub notify {
    my ($self, $sid, $text) = @_;
    open my $fh, '>>', "$self->{log}.notify" or die "$self->{log}.notify: $!\n";
    print {$fh} "$sid\t$text\n";
    close $fh;
}

# Stops the process: its port refuses connections from now on.
sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', -$self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

sub DESTROY { local ($?, $@); $_[0]->stop }

sub read_request {
    my ($c) = @_;
    my $req = '';
    while ($req !~ /\r\n\r\n/) { sysread($c, $req, 4096, length $req) or return }
    my $split = index($req, "\r\n\r\n");
    my $head = substr($req, 0, $split);
    my $body = substr($req, $split + 4);
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    while (length($body) < ($len // 0)) { sysread($c, $body, 65536, length $body) or last }
    my ($method, $path) = $head =~ m{^(\S+) (\S+)};
    my ($sid) = $head =~ /^Mcp-Session-Id:\s*(\S+)/mi;
    my ($last) = $head =~ /^Last-Event-ID:\s*(\S+)/mi;
    return { method => $method, path => $path, sid => $sid, body => $body, last_event_id => $last, head => $head };
}

sub answer {
    my ($c, $status, $body, @headers) = @_;
    my $extra = join '', map { "$_\r\n" } @headers;
    syswrite($c, "HTTP/1.1 $status X\r\nContent-Type: application/json\r\n$extra"
        . 'Content-Length: ' . length($body) . "\r\nConnection: close\r\n\r\n$body");
}

sub log_get {
    my ($self, $event, $req) = @_;
    open my $log, '>>', "$self->{log}.get" or return;
    print {$log} JSON::PP->new->canonical->encode({ event => $event, sid => $req->{sid} // '',
                                                   last_event_id => $req->{last_event_id} // '',
                                                   path => $req->{path}, head => $req->{head} }), "\n";
    close $log;
}

# In a child: the session's stream, fed from the notify file, until the
# peer closes it (or the child is killed).
sub hold_stream {
    my ($self, $c, $req) = @_;
    my $sid = $req->{sid};
    # Only what is queued from now on; the queue's end is taken before the
    # open is logged, so a message a test queues once it sees the open is
    # never skipped.
    open my $queue, '<', "$self->{log}.notify" or POSIX::_exit(1);
    seek $queue, 0, 2;
    $self->log_get('open', $req);
    syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        . "Connection: close\r\n\r\nretry: 300\n\n");
    my $sent = 0;
    my $partial = '';
    while (1) {
        my $rin = '';
        vec($rin, fileno($c), 1) = 1;
        if (select(my $rout = $rin, undef, undef, 0.02) > 0) {
            my $n = sysread($c, my $junk, 4096);
            last if !$n;
        }
        while (defined(my $line = <$queue>)) {
            $partial .= $line;
            next unless $partial =~ s/\n\z//;
            my ($for, $text) = split /\t/, $partial, 2;
            $partial = '';
            next unless $for eq $sid;
            ++$sent;
            my $event = qq(id: $sid-$sent\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/message",)
                . qq("params":{"level":"info","data":"$text"}}\n\n);
            last unless syswrite($c, $event);
        }
        seek $queue, 0, 1;  # clears EOF, so lines appended later are read
    }
    $self->log_get('closed', $req);
    POSIX::_exit(0);
}

sub serve {
    my ($self, $listen) = @_;
    my (%sessions, $refuse, $truncate);
    my $made = 0;
    while (my $c = $listen->accept) {
        my $req = read_request($c);
        if (!$req) { close $c; next }
        if ($req->{path} =~ m{^/control/(\w+)}) {
            kill 'TERM', -$$ if $1 eq 'drop';  # every stream holder (this process ignores it)
            %sessions = () if $1 eq 'forget';
            $refuse = 1 if $1 eq 'refuse';
            $refuse = 0 if $1 eq 'accept';
            $truncate = 1 if $1 eq 'truncate';
            answer($c, 200, '{}');
            close $c;
            next;
        }
        if ($req->{method} eq 'GET') {
            if (!defined $req->{sid} || !$sessions{ $req->{sid} }) {
                $self->log_get('lost', $req);
                $self->{lost} == 400 ? answer($c, 400, $everything_400) : answer($c, 404, $sdk_404);
            } elsif ($self->{get} eq 'stream') {
                my $child = fork // die "fork: $!\n";
                if (!$child) {
                    close $listen;
                    $SIG{TERM} = 'DEFAULT';
                    $self->hold_stream($c, $req);
                }
            } elsif ($self->{get} eq 'busy') {
                # The SDK's answer while another GET of the session is open.
                $self->log_get('busy', $req);
                answer($c, 409, '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Conflict: Only one SSE stream is allowed per session"},"id":null}');
            } else {
                $self->log_get('refused', $req);
                answer($c, 405, '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Method not allowed."},"id":null}',
                       'Allow: POST, DELETE');
            }
            close $c;
            next;
        }
        if (open my $log, '>>', $self->{log}) {
            print {$log} JSON::PP->new->canonical->encode({ sid => $req->{sid} // '', body => $req->{body} }), "\n";
            close $log;
        }
        my ($id) = $req->{body} =~ /"id"\s*:\s*(\d+)/;
        my ($rpc) = $req->{body} =~ /"method"\s*:\s*"([^"]+)"/;
        if (!defined $req->{sid} && ($rpc // '') eq 'initialize') {
            if ($truncate) {
                $truncate = 0;
                my $sid = "$self->{port}-" . ++$made;
                $sessions{$sid} = 1;
                syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: $sid\r\n"
                    . "Content-Length: 500\r\nConnection: close\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":$id,");
            } elsif ($refuse) {
                answer($c, 503, '{"jsonrpc":"2.0","error":{"code":-32603,"message":"not now"},"id":null}');
            } else {
                my $sid = "$self->{port}-" . ++$made;
                $sessions{$sid} = 1;
                answer($c, 200, qq({"jsonrpc":"2.0","id":$id,"result":{"protocolVersion":"2025-06-18",)
                    . q("capabilities":{},"serverInfo":{"name":"fake","version":"1"}}}), "Mcp-Session-Id: $sid");
            }
        } elsif (!defined $req->{sid} || !$sessions{ $req->{sid} }) {
            $self->{lost} == 400 ? answer($c, 400, $everything_400) : answer($c, 404, $sdk_404);
        } elsif (!defined $id) {
            answer($c, 202, '');
        } elsif ($req->{body} =~ /"name"\s*:\s*"stream"/) {
            # A tool call answered as an SSE stream: one progress notification, then the result.
            my $result = qq({"jsonrpc":"2.0","id":$id,"result":{"replica":$self->{port},"session":"$req->{sid}"}});
            my $events = qq(id: own-1\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress",)
                . qq("params":{"progressToken":1,"progress":1}}\n\nid: own-2\nevent: message\ndata: $result\n\n);
            syswrite($c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                . 'Content-Length: ' . length($events) . "\r\nConnection: close\r\n\r\n$events");
        } else {
            answer($c, 200, qq({"jsonrpc":"2.0","id":$id,"result":{"replica":$self->{port},"session":"$req->{sid}"}}));
        }
        close $c;
    }
}

1;
