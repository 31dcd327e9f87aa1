# Hostile input: odd and oversized ids, control bytes, repeated headers,
# bad Last-Event-IDs, broken, deep and huge bodies, chunked bodies,
# pipelining, clients that vanish mid-stream, slow readers, and DELETE
# racing a stream and a publish. Every case gets a clear 4xx or a clean
# close; one nginx with two workers serves the whole file, so the zone's
# counts at the end, the unchanged worker pids and a clean error log say
# that nothing crashed or leaked along the way.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;
use IO::Select;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF SHUT_WR inet_aton pack_sockaddr_in);
use Errno qw(EAGAIN EINTR);
use Time::HiRes qw(time);

$SIG{PIPE} = 'IGNORE';  # nginx may close while a big body is still being written

my $locations = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_stream_events seed;  # named events, followed by id; t/031 has the default forms
    mcp_session_heartbeat off;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /issue {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend {
    add_header Mcp-Session-Id $http_x_sid;
    add_header X-Body-Length $content_length;
    return 200 "backend $request_method\n";
}
location = /publish { mcp_session_publish zone=mcp; }
location = /publish-big { mcp_session_publish zone=mcp; mcp_session_event_max_size 1m; client_max_body_size 2m; }
location = /status { mcp_session_status zone=mcp; }
CONF

# A second server whose socket send buffer is small and fixed, so a reader
# that does not keep up blocks nginx within a few events (rather than
# after the megabytes loopback autotuning would buffer).
my $slow_port = do {
    my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die "no port: $!\n";
    my $p = $probe->sockport;
    close $probe;
    $p;
};
my $slow_server = <<"CONF";
server {
    listen 127.0.0.1:$slow_port sndbuf=32k;
    location /mcp {
        mcp_session zone=mcp;
        mcp_session_stream on;
        mcp_session_stream_events seed;
        mcp_session_heartbeat off;
        send_timeout 5s;
    }
}
CONF

my $n = start_nginx(
    workers     => 2,
    log_level   => 'info',
    http_config => "mcp_session_zone zone=mcp:32m buffer=64;\n$slow_server",
    config      => $locations,
);
my $port = $n->port;
my @workers_at_start = @{ $n->worker_pids };
my $started = time;

# What the zone should hold: live sessions, and which of them have a ring.
my (%live, %ring);

# ------------------------------------------------------------------ helpers

sub h { my ($res, $name) = @_; return $res->{headers}{ lc $name }[0] // '' }

sub status_of {
    my $res = $n->request('GET', '/status');
    die "status endpoint: $res->{status}\n" unless $res->{status} == 200;
    return decode_json($res->{body});
}

# Polls the status endpoint until the gauges match (or 10 s pass).
sub gauges_reach {
    my (%want) = @_;
    my $s;
    poll_until(10, sub { $s = status_of(); !grep { $s->{$_} != $want{$_} } keys %want });
    return $s;
}

sub expected_gauges {
    return (sessions => scalar(keys %live), sessions_with_ring => scalar(keys %ring), @_);
}

sub gauges_ok {
    my ($label, @extra) = @_;
    my %want = expected_gauges(open_streams => 0, @extra);
    my $s = gauges_reach(%want);
    is_deeply({ map { $_ => $s->{$_} } keys %want }, \%want, "$label: zone counts consistent");
}

# Learn mode: the backend echoes X-Sid as its session id.
sub create {
    my ($sid) = @_;
    my $res = $n->request('POST', '/mcp', headers => ['X-Sid' => $sid], body => '{}');
    $live{$sid} = 1 if $res->{status} == 200 && length($sid) <= 8192 && $sid =~ /^[\x21-\x7e]+$/;
    return $res;
}

sub use_session {
    my ($sid, %opt) = @_;
    return $n->request($opt{method} // 'POST', $opt{uri} // '/mcp',
        headers => ['Mcp-Session-Id' => $sid, @{ $opt{headers} // [] }], body => $opt{body} // '{}');
}

sub publish {
    my ($sid, $body, $uri) = @_;
    my $res = $n->request('POST', $uri // '/publish', headers => ['Mcp-Session-Id' => $sid], body => $body);
    $ring{$sid} = 1 if $res->{status} == 202;
    return $res;
}

sub stream_request {
    my ($sid, @extra) = @_;
    return McpSession::Http::build_request('GET', '/mcp',
        headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream', @extra]);
}

# A stream has a ring while it is open; once it closes the ring stays only
# if it holds a message (publish marks those).
sub stream { my ($sid, @extra) = @_; return McpSession::Stream->open($port, stream_request($sid, @extra)) }

# The message of a JSON-RPC error body, decoded (so escapes are undone).
sub error_message {
    my ($res) = @_;
    my $doc = eval { JSON::PP->new->utf8->decode($res->{body}) } or return "<not JSON: $res->{body}>";
    return $doc->{error}{message};
}

sub echoed_id {
    my ($res) = @_;
    my ($id) = error_message($res) =~ /^Mcp-Session-Id `(.*)` is unknown or expired/s;
    return $id;
}

# Writes `bytes` while reading the answer (so a big body never deadlocks
# against an early response); stops writing if nginx closes. Returns the raw answer.
sub exchange {
    my ($bytes, $secs) = @_;
    my $sock = McpSession::Http::connect_to($port, 5);
    binmode $sock;
    $sock->blocking(0);
    my $deadline = time + ($secs // 20);
    my ($off, $raw, $writing) = (0, '', 1);
    while (time < $deadline) {
        my $want_write = $writing && $off < length $bytes;
        my ($r, $w) = IO::Select->select(IO::Select->new($sock), $want_write ? IO::Select->new($sock) : undef,
            undef, $deadline - time);
        if ($w && @$w) {
            my $sent = syswrite($sock, $bytes, 262144, $off);
            if (defined $sent) { $off += $sent } elsif ($! != EAGAIN && $! != EINTR) { $writing = 0 }
        }
        if ($r && @$r) {
            my $got = sysread($sock, my $chunk, 262144);
            if ($got) { $raw .= $chunk; next }
            last if defined $got || ($! != EAGAIN && $! != EINTR);
        }
    }
    close $sock;
    return $raw;
}

# Every response in a raw exchange, in order (pipelining).
sub responses_in {
    my ($raw) = @_;
    my @out;
    while (length $raw) {
        my $end = index($raw, "\r\n\r\n");
        last if $end < 0;
        my $head = substr($raw, 0, $end);
        my $rest = substr($raw, $end + 4);
        my ($status) = $head =~ m{^HTTP/1\.\d (\d{3})};
        my %headers;
        for (split /\r\n/, $head) { push @{ $headers{ lc $1 } }, $2 if /^([^:]+):\s*(.*?)\s*$/ }
        my $body = '';
        if ((($headers{'transfer-encoding'} // [])->[0] // '') =~ /chunked/i) {
            while ($rest =~ s/^([0-9a-fA-F]+)\r\n//) {
                my $size = hex $1;
                if ($size == 0) { $rest =~ s/^\r\n//; last }
                $body .= substr($rest, 0, $size, '');
                $rest =~ s/^\r\n//;
            }
        } elsif (defined(my $len = ($headers{'content-length'} // [])->[0])) {
            $body = substr($rest, 0, $len, '');
        } else {
            ($body, $rest) = ($rest, '');
        }
        push @out, { status => $status // 0, headers => \%headers, body => $body };
        $raw = $rest;
    }
    return @out;
}

# SSE events of a stream's raw text (chunk framing removed): [id, kind, data].
sub events_in {
    my ($raw) = @_;
    my $split = index($raw, "\r\n\r\n");
    return () if $split < 0;
    my $body = substr($raw, $split + 4);
    my $text = '';
    while ($body =~ s/^([0-9a-fA-F]+)\r\n//) {
        my $size = hex $1;
        last if $size == 0 || length($body) < $size;
        $text .= substr($body, 0, $size, '');
        $body =~ s/^\r\n//;
    }
    my @events;
    while ($text =~ /id: (\d+)\nevent: (\w+)\ndata: ([^\n]*)\n\n/g) { push @events, [$1, $2, $3] }
    return @events;
}

# Events must follow each other by id; a gap is announced by exactly one
# `lagged` event carrying the last lost id and the count of lost events.
sub sequence_ok {
    my ($label, $first_expected, @events) = @_;
    my $expect = $first_expected;
    for my $e (@events) {
        my ($id, $kind, $data) = @$e;
        next if $kind eq 'init' || $kind eq 'heartbeat';  # markers carry the cursor, not an id of their own
        if ($kind eq 'lagged') {
            my ($dropped) = $data =~ /^\{"dropped":(\d+)\}$/;
            return fail("$label: lagged payload '$data'") unless $dropped;
            return fail("$label: lagged $id does not cover $dropped events from $expect")
                unless $id == $expect + $dropped - 1;
        } elsif ($id != $expect) {
            return fail("$label: event $id where $expect was due");
        }
        $expect = $id + 1;
    }
    return pass("$label: ids in order, gaps only behind lagged notices");
}

sub fill_ring {
    my ($sid, $count, $pad) = @_;
    my $filler = 'f' x $pad;
    my $last;
    for my $i (1 .. $count) {
        $last = publish($sid, qq({"jsonrpc":"2.0","method":"notifications/message","params":{"i":$i,"pad":"$filler"}}));
        die "publish $i to $sid: $last->{status} $last->{body}\n" if $last->{status} != 202;
    }
    return ($last->{body} =~ /(\d+)/)[0];
}

# A socket to the small-buffer server with a small receive buffer too:
# nginx's writes back up after a few dozen kilobytes.
sub small_buffer_socket {
    my $sock = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!\n";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!\n";
    $sock->connect(pack_sockaddr_in($slow_port, inet_aton('127.0.0.1'))) or die "connect: $!\n";
    binmode $sock;
    $sock->autoflush(1);
    return $sock;
}

# Reads until done (see $until), the peer closes (true), or `$secs` pass.
sub read_sock {
    my ($sock, $data_ref, $until, $secs) = @_;
    my $deadline = time + $secs;
    my $sel = IO::Select->new($sock);
    # $until: a pattern the data must match, or a byte count it must reach.
    my $done = sub { !defined $until ? 0 : ref $until ? $$data_ref =~ $until : length($$data_ref) >= $until };
    until ($done->()) {
        my $left = $deadline - time;
        return 0 if $left <= 0;
        next unless $sel->can_read($left);
        my $got = sysread($sock, my $chunk, 65536);
        return 1 if !$got;  # closed (or reset)
        $$data_ref .= $chunk;
    }
    return 0;
}

my $sse_end = qr/\r\n0\r\n\r\n\z/;

# ------------------------------------------------------------------ ids of every length

# Visible ASCII of every kind, including " \ ` that the 404 body must escape.
sub id_of_length {
    my ($len) = @_;
    return join '', map { chr(0x21 + (($len * 7 + $_) % 94)) } 0 .. $len - 1;
}

{
    my ($created, $validated, $echoed) = (0, 0, 0);
    for my $len (1 .. 128) {
        my $sid = id_of_length($len);
        my $made = create($sid);
        $created++ if $made->{status} == 200 && h($made, 'Mcp-Session-Id') eq $sid;
        $validated++ if use_session($sid)->{status} == 200;
        my $other = (substr($sid, 0, 1) eq '~' ? '}' : '~') . substr($sid, 1);  # never created
        my $unknown = use_session($other);
        $echoed++ if $unknown->{status} == 404 && echoed_id($unknown) eq $other;
    }
    is($created, 128, 'ids 1..128 bytes: the backend id reaches the client');
    is($validated, 128, 'ids 1..128 bytes: every one validates');
    is($echoed, 128, 'ids 1..128 bytes: an unknown one is echoed exactly (escaped JSON)');
    is(use_session(" \t" . id_of_length(40) . "\t ")->{status}, 200, 'ids: spaces and tabs around the id are ignored');
    gauges_ok('ids 1..128');
}

# Ids over 128 bytes are tracked (as a digest), up to what a header carries.
{
    for my $sid ('L' x 129, 'J' x 3000) {
        is(h(create($sid), 'Mcp-Session-Id'), $sid, length($sid) . '-byte backend id: passed to the client');
        is(use_session($sid)->{status}, 200, '... and it validates');
        is(use_session(substr($sid, 0, -1) . 'x')->{status}, 404, '... one differing in its last byte does not');
    }
    gauges_ok('long ids');
}

# Ids the store cannot hold: non-ASCII, spaces. The backend's answer
# passes unchanged; the id is not tracked; requests carrying it get 404.
{
    my $before = status_of();
    for my $sid ("caf\xc3\xa9", "sp ace") {
        my $made = create($sid);
        is($made->{status}, 200, 'unstorable backend id (' . length($sid) . ' bytes): the answer passes');
        is(h($made, 'Mcp-Session-Id'), $sid, '... with the id unchanged');
        is(use_session($sid)->{status}, 404, '... and requests carrying it get 404');
    }
    is(status_of()->{sessions}, $before->{sessions}, 'unstorable ids: nothing stored');
    ok($n->wait_for_log(qr/\[warn\].*backend session id of \d+ bytes is not tracked/, 5), 'unstorable ids: a warn line says so');
}

# Long ids up to the header buffer: 404 echoing 128 bytes and "...";
# past large_client_header_buffers nginx itself answers 400.
{
    for my $len (129, 1000, 8000) {
        my $sid = 'k' x ($len - 1) . 'z';
        my $res = use_session($sid);
        is($res->{status}, 404, "$len-byte id: 404");
        is(echoed_id($res), ('k' x 128) . '...', "$len-byte id: the echo is capped at 128 bytes");
        is(h($res, 'Content-Type'), 'application/json', "$len-byte id: JSON");
    }
    my $too_long = use_session('k' x 8200);
    is($too_long->{status}, 400, 'an id beyond large_client_header_buffers: nginx answers 400');
    my $many = $n->request('POST', '/mcp', headers => [map { ("X-Pad-$_" => 'p' x 7000) } 1 .. 6], body => '{}');
    is($many->{status}, 400, 'headers beyond all header buffers: 400');
    is(publish('k' x 8000, '{"jsonrpc":"2.0","method":"notifications/message","params":{}}')->{status}, 404, 'publish with an 8000-byte id: 404');
}

# Non-ASCII and control bytes: 404, escaped; invalid UTF-8 replaced.
{
    my @cases = (
        ["a\x01b",           "a\x01b",              'control byte'],
        ["x\x1fy\x7fz",      "x\x1fy\x7fz",         'US and DEL'],
        ["a\tb",             "a\tb",                'inner tab'],
        ["caf\xc3\xa9",      "caf\x{e9}",           'UTF-8'],
        ["\xff\xfe",         "\x{fffd}\x{fffd}",    'invalid UTF-8'],
        ["q\"b\\c`d",        "q\"b\\c`d",           'quote, backslash, backtick'],
        [('a' x 127) . "\xc3\xa9", ('a' x 127) . "\x{fffd}...", 'a UTF-8 sequence cut by the cap'],
    );
    for my $case (@cases) {
        my ($sid, $echo, $what) = @$case;
        my $res = use_session($sid);
        is($res->{status}, 404, "$what: 404");
        is(echoed_id($res), $echo, "$what: echoed escaped");
        unlike($res->{body}, qr/[\x00-\x1f]/, "$what: no raw control byte in the body");
    }
    is(use_session("a\x00b")->{status}, 400, 'NUL in the header: nginx answers 400');
    is(use_session("a\rb")->{status}, 400, 'bare CR in the header: nginx answers 400');
    my $stream = McpSession::Http::send_raw($port, stream_request("a\x01b"), 5);
    is($stream->{status}, 404, 'control byte on a stream GET: 404');
    is(publish("a\x01b", '{"jsonrpc":"2.0","method":"notifications/message","params":{}}')->{status}, 404, 'control byte on publish: 404');
}

# ------------------------------------------------------------------ repeated headers

{
    create('dup');
    my @dups = (
        ['dup', 'dup'], ['dup', 'unknown'], ['dup', ''], ['', 'dup'],
    );
    for my $pair (@dups) {
        my $res = $n->request('POST', '/mcp',
            headers => ['Mcp-Session-Id' => $pair->[0], 'Mcp-Session-Id' => $pair->[1]], body => '{}');
        is($res->{status}, 400, "two Mcp-Session-Id headers ('$pair->[0]', '$pair->[1]'): 400");
        like(error_message($res), qr/more than one Mcp-Session-Id/, '... naming the problem');
    }
    my $cases = $n->request('POST', '/mcp', headers => ['mcp-session-id' => 'dup', 'MCP-SESSION-ID' => 'dup'], body => '{}');
    is($cases->{status}, 400, 'repeated in other letter cases: 400');
    my $del = $n->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => 'dup', 'Mcp-Session-Id' => 'dup']);
    is($del->{status}, 400, 'DELETE with two ids: 400');
    is(use_session('dup')->{status}, 200, '... and the session was not ended');
    my $get = McpSession::Http::send_raw($port, stream_request('dup', 'Mcp-Session-Id' => 'dup'), 5);
    is($get->{status}, 400, 'stream GET with two ids: 400');
    my $pub = $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => 'dup', 'Mcp-Session-Id' => 'dup'], body => '{}');
    is($pub->{status}, 400, 'publish with two ids: 400');

    # Origin and MCP-Protocol-Version decide too: nginx would judge the
    # first, the backend might read the other.
    my @repeats = (
        ['Origin', 'http://localhost', 'https://evil.example'],
        ['Origin', 'https://evil.example', 'http://localhost'],
        ['Origin', 'http://localhost', 'http://localhost'],
        ['MCP-Protocol-Version', '2025-06-18', '2026-07-28'],
        ['MCP-Protocol-Version', '2026-07-28', '2025-06-18'],
    );
    for my $sid ('dup', 'nobody') {
        for my $r (@repeats) {
            my ($name, @values) = @$r;
            my $res = use_session($sid, headers => [map { ($name => $_) } @values]);
            is($res->{status}, 400, "two $name headers ($values[0], $values[1]) on a " . ($sid eq 'dup' ? 'live' : 'unknown') . ' session: 400');
            like(error_message($res), qr/more than one \Q$name\E header/, '... naming the problem');
        }
    }
    is(use_session('dup', headers => ['Origin' => 'http://localhost', 'MCP-Protocol-Version' => '2025-06-18'])->{status}, 200,
        'one of each: 200');
    # Header names in any letter case are the same headers (nginx's lower-case copy decides).
    is($n->request('POST', '/mcp', headers => ['mCP-sESSION-iD' => 'dup'], body => '{}')->{status}, 200,
        'the session header in odd letter case: the live session, 200');
    is($n->request('POST', '/mcp', headers => ['MCP-SESSION-ID' => 'nobody'], body => '{}')->{status}, 404,
        '... and an unknown id in upper case: 404');
    is(use_session('dup', headers => ['oRiGiN' => 'https://evil.example'])->{status}, 403, 'Origin in odd letter case: judged, 403');
    is(use_session('dup', headers => ['origin' => 'http://localhost', 'ORIGIN' => 'http://localhost'])->{status}, 400,
        'Origin twice in two letter cases: 400');
    is(use_session('dup', headers => ['mcp-protocol-version' => '1999-01-01'])->{status}, 400,
        'MCP-Protocol-Version in lower case: judged (an unknown revision is 400)');
    gauges_ok('repeated headers');
}

# ------------------------------------------------------------------ Last-Event-ID

{
    create('lei');
    publish('lei', '{"jsonrpc":"2.0","method":"notifications/message","params":{"n":1}}');
    my @bad = ('-1', '18446744073709551616', '18446744073709551617', '99999999999999999999999',
               '9' x 5000, 'abc', '1.5', '0x10', '+1', '1e3', '1 2', "\xd9\xa1", "1\x01");
    for my $value (@bad) {
        my $label = length($value) > 24 ? length($value) . ' digits' : "'$value'";
        my $res = McpSession::Http::send_raw($port, stream_request('lei', 'Last-Event-ID' => $value), 5);
        is($res->{status}, 400, "Last-Event-ID $label: 400");
        like(error_message($res), qr/Last-Event-ID (?:must be an event id|names no stream) of this session/, "Last-Event-ID $label: JSON error");
    }
    my $twice = McpSession::Http::send_raw($port, stream_request('lei', 'Last-Event-ID' => '1', 'Last-Event-ID' => '1'), 5);
    is($twice->{status}, 400, 'two Last-Event-ID headers: 400');
    like(error_message($twice), qr/more than one Last-Event-ID/, '... naming the problem');

    my $spaced = stream('lei', 'Last-Event-ID' => ' 1 ');
    my @events = events_in($spaced->read_until(qr/event: init\n.*\n\n/, 5));
    is(join(',', map { "$_->[0]:$_->[1]" } @events), '1:init', "Last-Event-ID ' 1 ': trimmed: init carries cursor 1, nothing replayed");
    $spaced->close;
    gauges_ok('Last-Event-ID');

    # A cursor from the future (a valid number, but no id this stream has
    # given yet): the core's replay plan says "replay nothing and wait for
    # new events".
    for my $cursor ('1000', '18446744073709551615') {
        my $future = stream('lei', 'Last-Event-ID' => $cursor);
        my $text = $future->read_until(qr/event: init\n.*\n\n/, 5);
        like($text, qr{^HTTP/1.1 200 .*event: init\n}s, "Last-Event-ID $cursor: the stream answers with init at once");
        publish('lei', '{"jsonrpc":"2.0","method":"notifications/message","params":{"after":"future"}}');
        like($future->read_until(qr/future/, 5), qr/"after":"future"/, "Last-Event-ID $cursor: new events arrive");
        $future->close;
    }
    gauges_ok('Last-Event-ID from the future');
    is(use_session('lei')->{status}, 200, 'Last-Event-ID: the session still works');
}

# A stream GET has no body. (One still arriving when the stream started
# used to be discarded under it: nginx then cut the stream at
# lingering_timeout, and missed a client that left.)
{
    create('getbody');
    my @cases = (
        ['a body',                 "Content-Length: 5\r\n\r\nhello"],
        ['an unfinished body',     "Content-Length: 100000\r\n\r\nhello"],
        ['a chunked body',         "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
        ['an unfinished chunked body', "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"],
    );
    for my $case (@cases) {
        my ($what, $tail) = @$case;
        my $s = McpSession::Stream->open($port, "GET /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: getbody\r\n"
            . "Accept: text/event-stream\r\n$tail");
        my $res = McpSession::Http::parse_response($s->read_until(qr/\r\n\r\n\{.*\}\z/s, 5));
        $s->close;
        is($res->{status}, 400, "stream GET with $what: 400");
        like(error_message($res), qr/a stream GET has no body/, "stream GET with $what: JSON error");
    }
    my $empty = stream('getbody', 'Content-Length' => '0');
    like($empty->read_until(qr/event: init\n.*\n\n/, 5), qr/^HTTP\/1.1 200 .*event: init\n/s, 'stream GET with Content-Length: 0 streams');
    $empty->close;
    gauges_ok('stream GET with a body');
}

# ------------------------------------------------------------------ publish bodies

{
    create('body');
    for my $body ('', '{', '{"a":', '{"a":"unterminated', '{"a":1,}', '{"a":1}}', "{\"a\":\"\x00\"}",
                  '[' x 100000, '{"a":' . ('[' x 100000), "{\"a\":\"\xff\"}") {
        my $label = length($body) > 24 ? length($body) . '-byte body' : "body '" . ($body =~ s/[^\x20-\x7e]/?/gr) . "'";
        my $res = publish('body', $body, '/publish-big');
        is($res->{status}, 400, "publish $label: 400");
        like(error_message($res), qr/one JSON-RPC message/, "publish $label: JSON error");
    }
    # Only requests and notifications: a client can do nothing else with a stream message.
    for my $case (['{"n":1}', qr/only JSON-RPC requests and notifications can be published/, 'plain JSON'],
                  ['{"jsonrpc":"2.0","id":3,"result":{}}', qr/a JSON-RPC response cannot be published: it belongs to the stream of its request/, 'a response'],
                  ['{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"x"}}', qr/belongs to the stream of its request/, 'an error response'],
                  ['{"jsonrpc":"1.0","method":"m"}', qr/"jsonrpc":"2.0"/, 'another jsonrpc version'],
                  ['{"jsonrpc":"2.0","method":42}', qr/a string "method"/, 'a method that is not a string']) {
        my ($body, $why, $label) = @$case;
        my $res = publish('body', $body);
        is($res->{status}, 400, "publish $label: 400");
        like(error_message($res), $why, "publish $label: the message says why");
    }
    is(publish('body', '{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}')->{status}, 202,
       'a server-to-client request is published');
    # nlohmann serialises recursively: depth is bounded before parsing.
    my $nested = sub { my ($depth) = @_; return '{"jsonrpc":"2.0","method":"m","params":' . ('[' x ($depth - 1)) . (']' x ($depth - 1)) . '}' };
    is(publish('body', $nested->(128))->{status}, 202, 'publish nested 128 levels: 202');
    is(publish('body', $nested->(129))->{status}, 400, 'publish nested 129 levels: 400');
    for my $depth (30000, 100000) {
        my $res = publish('body', $nested->($depth), '/publish-big');
        is($res->{status}, 400, "publish nested $depth levels: 400, the worker lives");
        like(error_message($res), qr/nested at most 128 levels/, '... saying why');
    }
    my $ten_mb = '{"pad":"' . ('x' x (10 * 1024 * 1024)) . '"}';
    my ($big) = responses_in(exchange(McpSession::Http::build_request('POST', '/publish',
        headers => ['Mcp-Session-Id' => 'body'], body => $ten_mb)));
    is($big->{status}, 413, '10 MB publish: 413');
    ($big) = responses_in(exchange(McpSession::Http::build_request('POST', '/publish-big',
        headers => ['Mcp-Session-Id' => 'body'], body => $ten_mb)));
    is($big->{status}, 413, '10 MB publish where events may be 1 MB: 413');
    my $res = publish('body', '{"pad":"' . ('y' x 70000) . '"}');
    is($res->{status}, 413, 'publish over mcp_session_event_max_size: 413');
    like(error_message($res), qr/mcp_session_event_max_size/, '... naming the directive');

    for my $uri ('/mcp', '/issue') {
        for my $with_session (0, 1) {
            my @headers = $with_session ? ('Mcp-Session-Id' => 'body') : ();
            my ($r) = responses_in(exchange(McpSession::Http::build_request('POST', $uri, headers => \@headers,
                body => $ten_mb)));
            is($r->{status}, 413, "10 MB to $uri " . ($with_session ? 'with' : 'without') . ' a session: 413');
        }
    }
    my $s = stream('body', 'Last-Event-ID' => '0');
    my @events = events_in($s->read_until(qr/id: 2\nevent: message\n.*\n\n/, 5));
    is(join(',', map { $_->[0] } @events), '0,1,2', 'rejected publishes used no event ids (init 0, then the two accepted)');
    $s->close;
    gauges_ok('publish bodies');
}

# ------------------------------------------------------------------ chunked bodies

sub chunked {
    my (@pieces) = @_;
    return join('', map { sprintf("%x\r\n%s\r\n", length $_, $_) } @pieces) . "0\r\n\r\n";
}

{
    create('chunk');
    my $res = McpSession::Http::send_raw($port, McpSession::Http::build_request('POST', '/publish',
        headers => ['Mcp-Session-Id' => 'chunk', 'Transfer-Encoding' => 'chunked'],
        body => chunked('{"jsonrpc":"2.0",', '"method":"notifications/message",', '"params":{"n":1}}')), 5);
    is($res->{status}, 202, 'chunked publish: 202');
    is($res->{body}, '{"id":1}', '... as event 1');
    $ring{chunk} = 1;
    my $s = stream('chunk');
    my @events = grep { $_->[1] ne 'init' } events_in($s->read_until(qr/id: 1\nevent: message\n.*\n\n/, 5));
    is($events[0][2], '{"jsonrpc":"2.0","method":"notifications/message","params":{"n":1}}', 'chunked publish: payload intact');
    $s->close;

    my @big = map { 'z' x 16000 } 1 .. 6;
    $res = McpSession::Http::send_raw($port, McpSession::Http::build_request('POST', '/publish',
        headers => ['Mcp-Session-Id' => 'chunk', 'Transfer-Encoding' => 'chunked'],
        body => chunked('{"pad":"', @big, '"}')), 5);
    is($res->{status}, 413, 'chunked publish over the event size: 413');
    my ($huge) = responses_in(exchange(McpSession::Http::build_request('POST', '/publish',
        headers => ['Mcp-Session-Id' => 'chunk', 'Transfer-Encoding' => 'chunked'],
        body => chunked(map { 'w' x 65536 } 1 .. 160))));
    is($huge->{status}, 413, 'chunked 10 MB publish: 413');
    $res = McpSession::Http::send_raw($port, McpSession::Http::build_request('POST', '/publish',
        headers => ['Mcp-Session-Id' => 'chunk', 'Transfer-Encoding' => 'chunked'], body => "zz\r\n{}\r\n0\r\n\r\n"), 5);
    is($res->{status}, 400, 'malformed chunk size: 400');

    # Issue mode reads a sessionless POST to see whether it is an initialize.
    my $init = '{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
    $res = McpSession::Http::send_raw($port, McpSession::Http::build_request('POST', '/issue',
        headers => ['Transfer-Encoding' => 'chunked'], body => chunked(unpack '(a10)*', $init)), 5);
    is($res->{status}, 200, 'chunked initialize in issue mode: 200');
    my $issued = h($res, 'Mcp-Session-Id');
    like($issued, qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, '... with a UUIDv7 session id');
    is(h($res, 'X-Body-Length'), length($init), '... and the backend got the whole body');
    $live{$issued} = 1;
    is($n->request('POST', '/issue', headers => ['Mcp-Session-Id' => $issued], body => '{}')->{status}, 200,
        '... and the session works');
    $res = McpSession::Http::send_raw($port, McpSession::Http::build_request('POST', '/issue',
        headers => ['Transfer-Encoding' => 'chunked'], body => chunked('{"jsonrpc":"2.0","id":"q",', '"method":"tools/list"}')), 5);
    is($res->{status}, 400, 'chunked non-initialize without a session in issue mode: 400');
    like($res->{body}, qr/"id":"q"/, '... carrying the request id');
    $res = $n->request('POST', '/issue', body => '{"method":' . ('[' x 100000));
    is($res->{status}, 400, 'issue mode: a deep, broken body is refused, it never reaches the backend');
    gauges_ok('chunked bodies');
}

# Clients that leave halfway through a body: nothing is created.
{
    my $before = status_of();
    for my $uri ('/issue', '/publish') {
        my $sock = McpSession::Http::connect_to($port, 5);
        print {$sock} "POST $uri HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: chunk\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":";
        close $sock;
    }
    my $sock = McpSession::Http::connect_to($port, 5);
    print {$sock} "POST /issue HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{\"method\":\"initialize\"";
    close $sock;
    is(publish('chunk', '{"jsonrpc":"2.0","method":"notifications/message","params":{"after":"abandoned bodies"}}')->{status}, 202, 'abandoned bodies: publishing still works');
    my $s = gauges_reach(expected_gauges());
    is($s->{sessions}, $before->{sessions}, 'abandoned bodies: no session made');
}

# ------------------------------------------------------------------ pipelining

{
    create('pipe');
    my $keep = ['Connection' => 'keep-alive'];
    my @requests = (
        ['POST', '/mcp', ['Mcp-Session-Id' => 'pipe'], '{"n":1}', 200, qr/^backend POST\n$/],
        ['POST', '/mcp', ['Mcp-Session-Id' => 'nobody'], '{"n":2}', 404, qr/session_expired/],
        ['POST', '/mcp', ['Mcp-Session-Id' => 'pipe', 'Mcp-Session-Id' => 'pipe'], '{"n":3}', 400, qr/more than one/],
        ['POST', '/publish', ['Mcp-Session-Id' => 'pipe'], '{"jsonrpc":"2.0","method":"notifications/message","params":{"n":4}}', 202, qr/^\{"id":1\}$/],
        ['POST', '/publish', ['Mcp-Session-Id' => 'pipe', 'Transfer-Encoding' => 'chunked'], chunked('{"jsonrpc":"2.0","method":"notifications/message","params":{"n":', '5}}'),
            202, qr/^\{"id":2\}$/],
        ['POST', '/publish', ['Mcp-Session-Id' => 'pipe'], '{"n":', 400, qr/one JSON-RPC message/],
        ['GET', '/mcp', ['Mcp-Session-Id' => 'pipe', 'Accept' => 'text/event-stream', 'Last-Event-ID' => 'x'], undef,
            400, qr/Last-Event-ID/],
        ['GET', '/mcp', ['Mcp-Session-Id' => 'pipe'], undef, 406, qr/text\/event-stream/],
        ['POST', '/issue', [], '{"jsonrpc":"2.0","id":9,"method":"tools/list"}', 400, qr/"id":9/],
        ['POST', '/issue', [], '{"jsonrpc":"2.0","id":10,"method":"initialize","params":{}}', 200, qr/^backend POST\n$/],
        ['GET', '/status', [], undef, 200, qr/"sessions":/],
        ['POST', '/mcp', ['Mcp-Session-Id' => 'pipe', 'Connection' => 'close'], '{"n":6}', 200, qr/^backend POST\n$/],
    );
    my $bytes = join '', map {
        my ($method, $uri, $headers, $body) = @$_;
        my @h = @$headers;
        push @h, @$keep unless grep { $_ eq 'Connection' } @h;
        McpSession::Http::build_request($method, $uri, headers => \@h, body => $body);
    } @requests;
    my $sock = McpSession::Http::connect_to($port, 5);
    binmode $sock;
    print {$sock} $bytes;  # all at once: nginx finds them queued behind each other
    my @responses = responses_in(McpSession::Http::read_until_closed($sock, time + 10));
    close $sock;
    is(scalar(@responses), scalar(@requests), 'pipelining: one answer per request');
    for my $i (0 .. $#requests) {
        my ($method, $uri, undef, undef, $status, $re) = @{ $requests[$i] };
        my $res = $responses[$i] // { status => 0, body => '' };
        is($res->{status}, $status, "pipelining: request " . ($i + 1) . " ($method $uri) answered $status");
        like($res->{body}, $re, "pipelining: request " . ($i + 1) . ' body');
    }
    my $issued = h($responses[9] // {}, 'Mcp-Session-Id');
    like($issued, qr/^[0-9a-f-]{36}$/, 'pipelining: the initialize in the middle got its session');
    $live{$issued} = 1 if $issued;
    $ring{pipe} = 1;  # two messages published
    gauges_ok('pipelining');
}

# ------------------------------------------------------------------ clients that vanish

{
    create('vanish');
    my $last = fill_ring('vanish', 64, 60000);  # ~3.8 MB of replay
    my @cuts = (
        [0,      'before any answer'],
        [1,      'after one byte'],
        [400,    'inside the headers or the first event'],
        [300000, 'after the first batch, mid-replay'],
    );
    for my $cut (@cuts) {
        my ($bytes, $what) = @$cut;
        my $sock = small_buffer_socket();
        print {$sock} stream_request('vanish', 'Last-Event-ID' => '0');
        my $data = '';
        read_sock($sock, \$data, $bytes, 5) if $bytes > 0;
        cmp_ok(length $data, '>=', $bytes, "vanishing reader $what: got its bytes");
        close $sock;
        gauges_ok("vanishing reader $what");
    }
    # A reader that half-closes: nginx notices the end of its input.
    my $sock = small_buffer_socket();
    print {$sock} stream_request('vanish', 'Last-Event-ID' => "$last");
    my $data = '';
    read_sock($sock, \$data, qr/event: init\n.*\n\n/, 5);
    shutdown($sock, SHUT_WR);
    ok(read_sock($sock, \$data, undef, 10), 'half-closed reader: nginx closes the stream');
    close $sock;
    gauges_ok('half-closed reader');

    # Gone while live events pour in.
    my $live_stream = stream('vanish', 'Last-Event-ID' => "$last");
    $live_stream->read_until(qr/event: init\n.*\n\n/, 5);
    close $live_stream->{sock};
    fill_ring('vanish', 20, 60000);
    gauges_ok('reader gone mid-stream');

    is(use_session('vanish')->{status}, 200, 'vanishing readers: the session still works');
    publish('vanish', '{"jsonrpc":"2.0","method":"notifications/message","params":{"marker":"last"}}');
    # Explicitly from 1: without Last-Event-ID only undelivered events would come.
    my $again = stream('vanish', 'Last-Event-ID' => '1');
    my $text = $again->read_until(qr/"marker":"last"[^\n]*\n\n/s, 15);
    my @events = grep { $_->[1] ne 'init' } events_in($text);
    is($events[0][1], 'lagged', 'vanishing readers: a fresh replay starts with the lagged notice');
    sequence_ok('vanishing readers: the ring is intact', 2, @events);
    like($events[-1][2], qr/"marker":"last"/, 'vanishing readers: ... up to the newest event');
    $again->close;
    gauges_ok('after the replay');
}

# ------------------------------------------------------------------ slow readers

# One that never reads: send_timeout ends it.
{
    create('stalled');
    my $sock = small_buffer_socket();
    print {$sock} stream_request('stalled');
    $ring{stalled} = 1;  # fill_ring below publishes into it
    my $data = '';
    read_sock($sock, \$data, qr/event: init\n/, 5);
    fill_ring('stalled', 10, 60000);  # far more than the socket buffers hold
    my $s = status_of();
    is($s->{open_streams}, 1, 'stalled reader: its stream is open while nginx waits');
    $s = gauges_reach(expected_gauges(open_streams => 0));
    is($s->{open_streams}, 0, 'stalled reader: send_timeout ended the stream');
    ok(read_sock($sock, \$data, undef, 10), 'stalled reader: its connection is closed');
    close $sock;
    is(publish('stalled', '{"jsonrpc":"2.0","method":"notifications/message","params":{"still":"here"}}')->{status}, 202, 'stalled reader: the session lives on');
}

# One that reads a little between publishes: it falls behind, gets one
# lagged notice per gap, and its ids stay consistent.
{
    create('slow');
    my $sock = small_buffer_socket();
    print {$sock} stream_request('slow');
    my $data = '';
    read_sock($sock, \$data, qr/event: init\n.*\n\n/, 5);
    my $sel = IO::Select->new($sock);
    my ($last, $pad) = (undef, 's' x 30000);
    for my $i (1 .. 150) {
        $last = publish('slow', qq({"jsonrpc":"2.0","method":"notifications/message","params":{"i":$i,"pad":"$pad"}}));
        die "publish $i: $last->{status}\n" if $last->{status} != 202;
        if ($sel->can_read(0)) {  # a sip, not a gulp
            sysread($sock, my $chunk, 2048);
            $data .= $chunk // '';
        }
    }
    my ($last_id) = $last->{body} =~ /(\d+)/;
    read_sock($sock, \$data, qr/id: $last_id\n.*\n\n/s, 30);
    my @events = events_in($data);
    is($events[-1][0], $last_id, 'slow reader: reaches the newest event');
    ok((grep { $_->[1] eq 'lagged' } @events) >= 1, 'slow reader: was told it lagged');
    sequence_ok('slow reader', 1, @events);
    close $sock;
    gauges_ok('slow reader gone');
}

# ------------------------------------------------------------------ DELETE racing a stream and a publish

{
    my %seen;
    my $iterations = 40;
    for my $i (1 .. $iterations) {
        my $sid = "race-$i";
        create($sid);
        publish($sid, '{"jsonrpc":"2.0","method":"notifications/message","params":{"n":1}}');
        my @requests = (
            [stream => stream_request($sid, 'Last-Event-ID' => '0')],
            [publish => McpSession::Http::build_request('POST', '/publish', headers => ['Mcp-Session-Id' => $sid], body => '{"jsonrpc":"2.0","method":"notifications/message","params":{"n":2}}')],
            [delete => McpSession::Http::build_request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $sid])],
        );
        @requests = @requests[ ([0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0], [0, 2, 1], [1, 0, 2])[$i % 6]->@* ];
        my (%sock, %raw);
        for my $r (@requests) {
            $sock{ $r->[0] } = McpSession::Http::connect_to($port, 5);
            binmode $sock{ $r->[0] };
        }
        for my $r (@requests) { syswrite($sock{ $r->[0] }, $r->[1]) }
        my $sel = IO::Select->new(values %sock);
        my %name_of = map { ("$sock{$_}" => $_) } keys %sock;
        my $deadline = time + 10;
        while ($sel->count && time < $deadline) {
            for my $fh ($sel->can_read($deadline - time)) {
                my $got = sysread($fh, my $chunk, 65536);
                if ($got) { $raw{ $name_of{"$fh"} } .= $chunk } else { $sel->remove($fh) }
            }
        }
        close $_ for values %sock;
        my %status = map { $_ => ((McpSession::Http::parse_response($raw{$_} // ''))->{status}) } keys %sock;
        $seen{"$_ $status{$_}"}++ for keys %status;
        is($sel->count, 0, "race $i: every connection ended") or last;
        my $ok = $status{delete} == 200
            && ($status{publish} == 202 || $status{publish} == 404)
            && ($status{stream} == 404 || ($status{stream} == 200 && $raw{stream} =~ $sse_end));
        ok($ok, "race $i: DELETE 200, publish 202/404, stream 404 or a clean end")
            or diag(join ', ', map { "$_ $status{$_}" } sort keys %status);
        sequence_ok("race $i: stream events", 1, events_in($raw{stream})) if $status{stream} == 200;
        delete $live{$sid};
        delete $ring{$sid};
    }
    diag('race outcomes: ' . join(', ', map { "$_ x$seen{$_}" } sort keys %seen));
    gauges_ok('DELETE races');

    # A new session under a deleted id starts from event 1 with an empty ring.
    create('race-1');
    my $s = stream('race-1');
    my @events = events_in($s->read_until(qr/event: init\n.*\n\n/, 5));
    is(join(',', map { "$_->[0]:$_->[1]" } @events), '0:init', 'a reused id starts a fresh stream');
    $s->close;
}

# ------------------------------------------------------------------ at the end

{
    gauges_ok('end of the suite');
    my $s = status_of();
    is($s->{counters}{evicted}, 0, 'nothing was evicted (the counts above are exact)');
    is_deeply($n->worker_pids, \@workers_at_start, 'the same two workers served the whole suite');
    my @log = split /\n/, $n->error_log;
    my @bad = grep { /\[(alert|crit|emerg)\]|exited on signal/ } @log;
    is(scalar(@bad), 0, 'error log: no alert, crit, emerg or signal') or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    my @failed = grep { /mcp_session: .* failed/ } @log;
    is(scalar(@failed), 0, 'error log: no handler of the module failed') or diag(join "\n", @failed[0 .. ($#failed < 9 ? $#failed : 9)]);
    open my $fh, '<', $n->servroot . '/logs/access.log' or die "access log: $!\n";
    my @server_errors = grep { /" 5\d\d / } <$fh>;
    close $fh;
    is(scalar(@server_errors), 0, 'access log: no request was answered 5xx') or diag(join '', @server_errors[0 .. ($#server_errors < 9 ? $#server_errors : 9)]);
    diag(sprintf 'suite ran in %.1f s', time - $started);
}

$n->stop;
done_testing();
