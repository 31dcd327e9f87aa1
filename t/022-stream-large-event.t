# Events larger than the stream's 256 KB batch (mcp_session_event_max_size
# above it) are delivered whole, in replay and live, and the events after
# them follow (issue 11 item 5): no accepted event may wedge a stream.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;

my $n = start_nginx(
    workers     => 2,
    http_config => 'mcp_session_zone zone=mcp:8m;',
    config      => <<'CONF');
location /mcp { mcp_session zone=mcp; mcp_session_stream on; mcp_session_heartbeat off;
                proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /publish { mcp_session_publish zone=mcp; mcp_session_event_max_size 1m; client_max_body_size 2m;
                      client_body_buffer_size 2m; }
CONF

sub publish {
    my ($sid, $tag, $bytes) = @_;
    my $body = qq({"jsonrpc":"2.0","method":"notifications/message","params":{"tag":"$tag","blob":")
        . ('x' x $bytes) . '"}}';
    return $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => $sid], body => $body)->{status};
}

sub stream {
    my ($sid, @extra) = @_;
    return open_stream($n, 'GET', '/mcp', headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'text/event-stream', @extra]);
}

# The message events of a (chunked) stream: tag => blob length.
sub messages_in {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my $text = McpSession::Http::decode_chunked($body // '');
    my @got;
    while ($text =~ /id: (\d+)\nevent: message\ndata: ([^\n]*)\n\n/g) {
        my ($id, $data) = ($1, $2);
        my ($tag) = $data =~ /"tag":"([\w-]+)"/;
        my ($blob) = $data =~ /"blob":"(x*)"/;
        push @got, "$id:" . ($tag // '?') . ':' . length($blob // '');
    }
    return join ',', @got;
}

is($n->request('POST', '/mcp?sid=big', body => '{}')->{status}, 200, 'session');
is(publish('big', 'huge', 300 * 1024), 202, 'a 300 KB event is accepted');
is(publish('big', 'small', 10), 202, 'a small event after it');

my $s = stream('big', 'Last-Event-ID' => '0');
$s->read_until(qr/"tag":"small"/, 10);
is(messages_in($s->data), '1:huge:307200,2:small:10', 'replay: the large event whole, then the one after it');

is(publish('big', 'live-huge', 600 * 1024), 202, 'a 600 KB event published live');
is(publish('big', 'live-small', 10), 202, 'and a small one');
$s->read_until(qr/"tag":"live-small"/, 10);
is(messages_in($s->data), '1:huge:307200,2:small:10,3:live-huge:614400,4:live-small:10',
    'live: the large event whole, then the one after it');
$s->close;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]|exited on signal|AddressSanitizer/, 'no worker trouble');
$n->stop;
done_testing();
