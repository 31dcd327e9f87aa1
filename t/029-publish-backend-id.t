# Issue mode: the backend knows only its own session ids, so the publish
# endpoint also accepts them: the message reaches the client's stream,
# which the client opened with nginx's id. An unknown backend id is 404,
# and a backend id stops resolving once its session is deleted or expired;
# restored sessions (state=) resolve by backend id again.
# Two workers: whichever one takes the publish, the index is shared.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
my $request = '{"jsonrpc":"2.0","id":2,"method":"tools/list"}';

my $n = start_nginx(
    workers     => 2,
    log_level   => 'info',
    http_config => "mcp_session_zone zone=mcp:1m state=mcp.state;\nmcp_session_zone zone=short:1m idle_timeout=1s sweep_interval=200ms;",
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /short {
    mcp_session zone=short;
    mcp_session_mode issue;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
# Each initialize gets a backend id of its own; later requests echo the
# id the backend is addressed by, as a backend that publishes would know it.
location /backend {
    if ($http_mcp_session_id = "") { add_header Mcp-Session-Id "bk-$request_id"; return 200 "ok\n"; }
    return 200 "$http_mcp_session_id";
}
location = /publish { mcp_session_publish zone=mcp; }
location = /publish-short { mcp_session_publish zone=short; }
location = /status { mcp_session_status zone=mcp; }
CONF

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

sub initialize {
    my ($uri) = @_;
    my $res = $n->request('POST', $uri, body => $initialize);
    die "initialize: $res->{status}" if $res->{status} != 200;
    my $sid = h($res, 'Mcp-Session-Id');
    my $backend = $n->request('POST', $uri, headers => ['Mcp-Session-Id' => $sid], body => $request)->{body};
    return ($sid, $backend);
}

sub publish {
    my ($uri, $id, $body) = @_;
    return $n->request('POST', $uri, headers => ['Mcp-Session-Id' => $id], body => $body);
}

my ($sid, $backend_id) = initialize('/mcp');
like($backend_id, qr/^bk-[0-9a-f]{32}$/, 'the backend knows the session by its own id');
isnt($backend_id, $sid, 'which is not the one the client has');
my ($other_sid, $other_backend_id) = initialize('/mcp');
isnt($other_backend_id, $backend_id, 'another session, another backend id');

my $s = open_stream($n, 'GET', '/mcp', headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream']);
$s->read_until(qr/event: init\n.*\n\n/, 5);

# Both workers take publishes (separate connections); every one reaches the stream.
my @codes;
for my $i (1 .. 6) {
    my $res = publish('/publish', $backend_id, qq({"jsonrpc":"2.0","method":"notifications/message","params":{"n":$i}}));
    push @codes, $res->{status};
}
is(join(',', @codes), '202,202,202,202,202,202', "publishes by the backend's id are accepted");
my $text = $s->read_until(qr/"n":6/, 5);
is(scalar(() = $text =~ /"method":"notifications\/message"/g), 6, "the client's stream (nginx's id) got all six");
$s->close;

is(publish('/publish', $sid, '{"jsonrpc":"2.0","method":"m"}')->{status}, 202, "nginx's id still works");
is(publish('/publish', 'bk-unknown', '{"jsonrpc":"2.0","method":"m"}')->{status}, 404, 'an unknown backend id is 404');
my $res = publish('/publish', $other_backend_id, '{"jsonrpc":"2.0","method":"m"}');
is($res->{status}, 202, "the other session's backend id reaches the other session");
my $other = open_stream($n, 'GET', '/mcp', headers => ['Mcp-Session-Id' => $other_sid, 'Accept' => 'text/event-stream', 'Last-Event-ID' => '0']);
like($other->read_until(qr/"method":"m"/, 5), qr/"method":"m"/, "and its stream replays it");
$other->close;

# DELETE: the backend id no longer resolves.
is($n->request('DELETE', '/mcp', headers => ['Mcp-Session-Id' => $sid])->{status}, 200, 'the session is deleted');
is(publish('/publish', $backend_id, '{"jsonrpc":"2.0","method":"m"}')->{status}, 404, 'its backend id is 404 after DELETE');
is(publish('/publish', $other_backend_id, '{"jsonrpc":"2.0","method":"m"}')->{status}, 202, 'the other one still resolves');

# A restart restores the sessions from the state file, and the index with them.
$n->restart;
is(publish('/publish', $other_backend_id, '{"jsonrpc":"2.0","method":"m"}')->{status}, 202, 'after a restart the backend id resolves');
is(publish('/publish', $backend_id, '{"jsonrpc":"2.0","method":"m"}')->{status}, 404, 'the deleted one still does not');

# Expiry (idle 1 s): the backend id resolves, then stops.
my ($short_sid, $short_backend_id) = initialize('/short');
is(publish('/publish-short', $short_backend_id, '{"jsonrpc":"2.0","method":"m"}')->{status}, 202, 'a short-lived session resolves by backend id');
ok(poll_until(10, sub { publish('/publish-short', $short_backend_id, '{"jsonrpc":"2.0","method":"m"}')->{status} == 404 }),
   'after it expires its backend id is 404');
is(publish('/publish-short', $short_sid, '{"jsonrpc":"2.0","method":"m"}')->{status}, 404, "so is nginx's id");

unlike($n->error_log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit|emerg)\]/, 'no crash or alert');
$n->stop;
done_testing();
