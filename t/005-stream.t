# nginx serves each session's SSE stream from the shared ring: replay after
# Last-Event-ID, lagged notices, live delivery from either worker,
# heartbeats, takeover by a newer GET, and the end of the stream when the
# session ends. In the seed's vocabulary (mcp_session_stream_events seed),
# whose named events are easy to follow; t/031 has the default wire forms.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_stream_events seed;
    mcp_session_heartbeat off;
    add_header X-Pid $pid always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /publish { mcp_session_publish zone=mcp; mcp_session_event_max_size 1k; add_header X-Pid $pid always; }
location = /status { mcp_session_status zone=mcp; }
CONF

sub header_of { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

sub nginx_with {
    my (%args) = @_;
    return start_nginx(
        workers     => 2,
        http_config => $args{zone} // 'mcp_session_zone zone=mcp:1m;',
        config      => $args{config} // $locations,
    );
}

sub create { my ($n, $sid) = @_; return $n->request('POST', "/mcp?sid=$sid", body => '{}') }

sub publish {
    my ($n, $sid, $body, $kind) = @_;
    my $uri = defined $kind ? "/publish?event=$kind" : '/publish';
    return $n->request('POST', $uri, headers => ['Mcp-Session-Id' => $sid], body => $body);
}

sub stream {
    my ($n, $sid, @extra) = @_;
    return open_stream($n, 'GET', '/mcp',
        headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream', @extra]);
}

# Events in the order they arrived: [id, kind, data].
sub events_in {
    my ($text) = @_;
    my @events;
    while ($text =~ /id: (\d+)\nevent: (\w+)\ndata: ([^\n]*)\n\n/g) { push @events, [$1, $2, $3] }
    return @events;
}

sub ids_of { return join ',', map { $_->[0] } @_ }

# init (carrying the client's cursor), replay after Last-Event-ID, then
# live; publishing with nobody listening still buffers.
{
    my $n = nginx_with();
    create($n, 's1');
    for my $i (1 .. 3) {
        my $res = publish($n, 's1', qq({"jsonrpc":"2.0","method":"notifications/message","params":{"n":$i}}));
        is($res->{status}, 202, "replay: publish $i accepted");
        is($res->{body}, qq({"id":$i}), "replay: publish $i got id $i");
    }
    is(publish($n, 's1', '{"jsonrpc":"2.0","method":"notifications/message","params":{"p":1}}', 'progress')->{body}, '{"id":4}', 'replay: progress events share the id space');

    my $s = stream($n, 's1', 'Last-Event-ID' => '2');
    my $text = $s->read_until(qr/id: 4\n[^\n]*\n[^\n]*\n\n/, 5);
    like($text, qr{^HTTP/1.1 200 }, 'replay: 200');
    like($text, qr{\r\nContent-Type: text/event-stream\r\n}i, 'replay: text/event-stream');
    like($text, qr{\r\nCache-Control: no-cache\r\n}i, 'replay: Cache-Control no-cache');
    like($text, qr{\r\nX-Accel-Buffering: no\r\n}i, 'replay: X-Accel-Buffering no');
    my @events = events_in($text);
    is(ids_of(@events), '2,3,4', 'replay: init with the cursor, then only events after Last-Event-ID');
    is($events[0][1], 'init', 'replay: init on connect');
    like($events[0][2], qr/^\{"session_id":"s1","connected_at":\d+\}$/, 'replay: init payload');
    is($events[1][1], 'message', 'replay: message kind');
    is($events[1][2], '{"jsonrpc":"2.0","method":"notifications/message","params":{"n":3}}', 'replay: payload intact');
    is($events[2][1], 'progress', 'replay: progress kind');

    is(publish($n, 's1', '{"jsonrpc":"2.0","method":"notifications/message","params":{"live":true}}')->{status}, 202, 'live: published while streaming');
    $text = $s->read_until(qr/id: 5\n[^\n]*\n[^\n]*\n\n/, 5);
    is(ids_of(events_in($text)), '2,3,4,5', 'live: the new event follows, exactly once');
    $s->close;

    my $fresh = stream($n, 's1', 'Last-Event-ID' => '0');
    $text = $fresh->read_until(qr/event: init\n.*\n\n/, 5);
    is(ids_of(events_in($text)), '5', 'replay: 0 gets only what no stream delivered: here nothing, init at 5');
    $fresh->close;
    $n->stop;
}

# A cursor older than the ring: one lagged event with the dropped count.
{
    my $n = nginx_with(zone => 'mcp_session_zone zone=mcp:1m buffer=4;');
    create($n, 'lagging');
    publish($n, 'lagging', qq({"jsonrpc":"2.0","method":"notifications/message","params":{"n":$_}})) for 1 .. 10;  # ring keeps 7..10
    my $s = stream($n, 'lagging', 'Last-Event-ID' => '2');
    my @events = events_in($s->read_until(qr/id: 10\n[^\n]*\n[^\n]*\n\n/, 5));
    is(ids_of(@events), '2,6,7,8,9,10', 'lagged: init, notice, then the retained events (init takes no slot)');
    is($events[1][1], 'lagged', 'lagged: kind');
    is($events[1][2], '{"dropped":4}', 'lagged: 3..6 were lost');
    $s->close;
    $n->stop;
}

# Errors: 406, 400 for Last-Event-ID, 404, 405, 413, 400 for bodies.
{
    my $n = nginx_with();
    create($n, 'e1');
    my $no_accept = $n->request('GET', '/mcp', headers => ['Mcp-Session-Id' => 'e1']);
    is($no_accept->{status}, 406, 'errors: GET without Accept text/event-stream is 406');
    like($no_accept->{body}, qr/"code":-32000/, 'errors: 406 carries a JSON-RPC error');
    for my $bad ('-1', 'abc', '1.5', '99999999999999999999999') {
        my $res = $n->request('GET', '/mcp',
            headers => ['Mcp-Session-Id' => 'e1', 'Accept' => 'text/event-stream', 'Last-Event-ID' => $bad]);
        is($res->{status}, 400, "errors: Last-Event-ID '$bad' is 400");
        like($res->{body}, qr/Last-Event-ID (?:must be an event id|names no stream) of this session/, "errors: ... with a JSON error");
    }
    my $unknown = $n->request('GET', '/mcp', headers => ['Mcp-Session-Id' => 'nobody', 'Accept' => 'text/event-stream']);
    is($unknown->{status}, 404, 'errors: stream for an unknown session is 404');
    like($unknown->{body}, qr/"error":"session_expired"/, 'errors: ... with the re-initialize body');

    my $get = $n->request('GET', '/publish', headers => ['Mcp-Session-Id' => 'e1']);
    is($get->{status}, 405, 'errors: publish with GET is 405');
    is(header_of($get, 'Allow'), 'POST', 'errors: ... and Allow: POST');
    is(publish($n, 'e1', '{"big":"' . ('x' x 2000) . '"}')->{status}, 413, 'errors: event over max size is 413');
    is(publish($n, 'e1', '{"truncated":')->{status}, 400, 'errors: invalid JSON is 400');
    is(publish($n, 'e1', '[1,2]')->{status}, 400, 'errors: a JSON array is not one message');
    is(publish($n, 'e1', '{}', 'init')->{status}, 400, 'errors: publishers cannot forge init events');
    my $gone = publish($n, 'nobody', '{"jsonrpc":"2.0","method":"notifications/message","params":{}}');
    is($gone->{status}, 404, 'errors: publish to an unknown session is 404');
    like($gone->{body}, qr/"error":"session_expired"/, 'errors: ... with the re-initialize body');
    is($n->request('POST', '/publish', body => '{}')->{status}, 400, 'errors: publish without a session id is 400');
    is(publish($n, 'e1', '{"jsonrpc":"2.0","method":"notifications/message","params":{"ok":1}}')->{body}, '{"id":1}', 'errors: the rejected publishes used no event ids');
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'errors: clean error log');
    $n->stop;
}

# Heartbeats carry the stream's cursor and take no id of their own.
{
    (my $config = $locations) =~ s/mcp_session_heartbeat off;/mcp_session_heartbeat 200ms;/;
    my $n = nginx_with(config => $config);
    create($n, 'hb');
    my $s = stream($n, 'hb');
    my @events = events_in($s->read_until(qr/(event: heartbeat\n.*\n\n.*){2}/s, 5));
    # A slow reader may already hold a third heartbeat; the first three count.
    cmp_ok(scalar(@events), '>=', 3, 'heartbeat: at least init and two heartbeats');
    is(ids_of(@events[0 .. ($#events < 2 ? $#events : 2)]), '0,0,0', 'heartbeat: init and heartbeats carry the cursor 0');
    is(publish($n, 'hb', '{"jsonrpc":"2.0","method":"notifications/message","params":{"after":"beats"}}')->{body}, '{"id":1}', 'heartbeat: the first message is still id 1');
    is($events[1][1], 'heartbeat', 'heartbeat: kind');
    like($events[1][2], qr/^\{"ts":\d+\}$/, 'heartbeat: payload');
    $s->close;
    $n->stop;
}

# Published in one worker, delivered by the other.
{
    my $n = nginx_with();
    create($n, 'x');
    my $s = stream($n, 'x');
    my $head = $s->read_until(qr/event: init\n.*\n\n/, 5);
    my ($stream_pid) = $head =~ /\r\nX-Pid: (\d+)\r\n/i;
    ok($stream_pid, 'workers: stream pid known');
    my ($other_pid, $id);
    for (1 .. 100) {
        my $res = publish($n, 'x', '{"jsonrpc":"2.0","method":"notifications/message","params":{"from":"elsewhere"}}');
        my $pid = header_of($res, 'X-Pid');
        if ($pid ne $stream_pid) { ($other_pid, $id) = ($pid, $res->{body} =~ /(\d+)/); last }
    }
    ok($other_pid, 'workers: a publish was handled by the other worker');
    my @events = events_in($s->read_until(qr/id: $id\n[^\n]*\n[^\n]*\n\n/, 5));
    ok((grep { $_->[0] == $id } @events) == 1, "workers: event $id published in $other_pid reached the stream in $stream_pid once");
    is(ids_of(@events), join(',', 0 .. $id), 'workers: init, then every event in id order, no gaps');
    $s->close;
    $n->stop;
}

# A newer GET takes over; the older stream ends cleanly.
{
    my $n = nginx_with();
    create($n, 'tk');
    my $old = stream($n, 'tk');
    $old->read_until(qr/event: init\n.*\n\n/, 5);
    my $new = stream($n, 'tk', 'Last-Event-ID' => '1');
    $new->read_until(qr/id: 0\nevent: init\n.*\n\n/, 5);
    $old->read_until(qr/\r\n0\r\n\r\n/, 5);
    like($old->data, qr/\r\n0\r\n\r\n$/, 'takeover: the older stream ended with the final chunk');
    publish($n, 'tk', '{"jsonrpc":"2.0","method":"notifications/message","params":{"after":"takeover"}}');
    like($new->read_until(qr/takeover/, 5), qr/id: 1\nevent: message\ndata: \{"jsonrpc":"2.0","method":"notifications\/message","params":\{"after":"takeover"\}\}/,
        'takeover: the newer stream gets new events');
    unlike($old->data, qr/takeover/, 'takeover: the older stream does not');
    $new->close;
    $n->stop;
}

# DELETE ends the session and its open stream.
{
    my $n = nginx_with();
    create($n, 'del');
    my $s = stream($n, 'del');
    $s->read_until(qr/event: init\n.*\n\n/, 5);
    is($n->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => 'del'])->{status}, 200, 'delete: backend agreed');
    $s->read_until(qr/\r\n0\r\n\r\n/, 5);
    like($s->data, qr/\r\n0\r\n\r\n$/, 'delete: the stream ended with the final chunk');
    is(publish($n, 'del', '{"jsonrpc":"2.0","method":"notifications/message","params":{}}')->{status}, 404, 'delete: publishing to the ended session is 404');
    $n->stop;
}

# A session that expires while streaming ends its stream at its deadline,
# not at the next sweep (an hour away here) or heartbeat (off).
{
    my $n = nginx_with(zone => 'mcp_session_zone zone=mcp:1m max_lifetime=1500ms sweep_interval=1h;');
    create($n, 'exp');
    my $s = stream($n, 'exp');
    $s->read_until(qr/event: init\n.*\n\n/, 5);
    unlike($s->data, qr/\r\n0\r\n\r\n$/, 'expiry: the stream is open while the session lives');
    $s->read_until(qr/\r\n0\r\n\r\n/, 10);
    like($s->data, qr/\r\n0\r\n\r\n$/, 'expiry: the stream ended with the final chunk when the session expired');
    my $status = $n->request('GET', '/status');
    like($status->{body}, qr/"sessions":0,"sessions_with_ring":0,"open_streams":0/, 'expiry: session, ring and stream are gone from the zone');
    $n->stop;
}

# A reader that stops reading: nginx holds one batch for it, the ring
# overflows, and when it reads again it gets one lagged notice and then
# the retained events in order.
{
    (my $config = $locations) =~ s/mcp_session_event_max_size 1k;/mcp_session_event_max_size 64k;/;
    my $n = nginx_with(zone => 'mcp_session_zone zone=mcp:4m buffer=8;', config => $config);
    create($n, 'slow');
    my $s = stream($n, 'slow');
    $s->read_until(qr/event: init\n.*\n\n/, 5);
    my $filler = 'f' x 60000;
    my $last;
    for my $i (1 .. 300) {  # 18 MB: more than the socket buffers hold
        $last = publish($n, 'slow', qq({"jsonrpc":"2.0","method":"notifications/message","params":{"i":$i,"pad":"$filler"}}));
        die "publish $i: $last->{status}" if $last->{status} != 202;
    }
    my ($last_id) = $last->{body} =~ /(\d+)/;
    my $text = $s->read_until(qr/id: $last_id\n.*\n\n/, 30);
    my @events = grep { $_->[1] ne 'init' } events_in($text);
    my @lagged = grep { $_->[1] eq 'lagged' } @events;
    is(scalar(@lagged), 1, 'slow reader: exactly one lagged notice');
    my @ids = map { $_->[0] } @events;
    my ($lag_index) = grep { $events[$_][1] eq 'lagged' } 0 .. $#events;
    my $lag_at = $events[$lag_index][0];
    my ($dropped) = $lagged[0][2] =~ /^\{"dropped":(\d+)\}$/;
    is_deeply([@ids[0 .. $lag_index - 1]], [1 .. $lag_index], 'slow reader: what it got before falling behind is complete');
    is($dropped, $lag_at - $lag_index, 'slow reader: lagged counts exactly the events it never got');
    is_deeply([@ids[$lag_index + 1 .. $#ids]], [$lag_at + 1 .. $last_id],
        'slow reader: after the notice, the retained events in order up to the newest');
    is($last_id - $lag_at, 8, 'slow reader: those are the 8 the ring keeps');
    cmp_ok($dropped, '>', 0, 'slow reader: some events were dropped');
    $s->close;
    $n->stop;
}

# nginx -s reload: old workers end their streams at once; the client
# reconnects to a new worker and replays from the ring.
{
    my $n = nginx_with();
    create($n, 'rl');
    my $s = stream($n, 'rl');
    $s->read_until(qr/event: init\n.*\n\n/, 5);
    publish($n, 'rl', '{"jsonrpc":"2.0","method":"notifications/message","params":{"before":"reload"}}');
    $s->read_until(qr/id: 1\n/, 5);
    ok($n->reload(http_config => 'mcp_session_zone zone=mcp:1m;', config => $locations), 'reload: new workers up');
    like($s->read_until(qr/\r\n0\r\n\r\n$/, 5), qr/\r\n0\r\n\r\n$/, 'reload: the old worker ends the stream cleanly (final chunk)');
    $s->read_until(qr/(?!)/, 5);  # then the close
    ok($s->closed, 'reload: the old worker closed the stream');
    publish($n, 'rl', '{"jsonrpc":"2.0","method":"notifications/message","params":{"during":"reconnect"}}');
    my $again = stream($n, 'rl', 'Last-Event-ID' => '1');
    my @events = events_in($again->read_until(qr/id: 2\n[^\n]*\n[^\n]*\n\n/, 5));
    is(ids_of(@events), '1,2', 'reload: init, then the missed event, from a new worker');
    like($events[1][2], qr/during/, 'reload: the missed event is the one published in between');
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]|open socket|exited on signal/, 'reload: clean error log');
    $again->close;
    $n->stop;
}

done_testing();
