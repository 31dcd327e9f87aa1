# The module beside nchan in Redis mode, in one nginx (2 workers), on one
# private redis-server: nchan bundles its own hiredis, and this module's
# (Debian's, linked in statically with its symbols kept local) must not
# take its place. Linked against the shared libhiredis, nchan's workers
# used this module's hiredis and crashed (signal 11).
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use McpSession::Nginx;
use McpSession::Redis;
use McpSession::Nodes qw(start_node);
use JSON::PP qw(decode_json);
use Test::More;

my $nchan = '/usr/lib/nginx/modules/ngx_nchan_module.so';
die "$nchan is missing: ./build.sh test installs libnginx-mod-nchan\n" unless -f $nchan;

my $root = McpSession::Nginx::repo_root();
my ($redis_port, $backend_port, $port) = map { free_port() } 1 .. 3;
my $redis = McpSession::Redis->new(dir => "$root/t/servroot-043-redis", port => $redis_port)->start;

my $backend = McpSession::Nginx->new(
    servroot => "$root/t/servroot-043-backend", port => $backend_port, load_module => 0, log_level => 'warn',
    config   => <<'CONF');
location / {
    if ($http_mcp_session_id = "") {
        add_header Mcp-Session-Id "s-$request_id" always;
        return 200 "init\n";
    }
    return 200 "ok\n";
}
CONF
$backend->start;
$backend->{started_by_api} = 1;

my $n = start_node(
    servroot    => "$root/t/servroot-043-node",
    port        => $port,
    main_config => "load_module $nchan;",
    http_config => <<"CONF",
mcp_session_zone zone=mcp:1m redis=127.0.0.1:$redis_port;
upstream nchan_redis { nchan_redis_server "redis://127.0.0.1:$redis_port/3"; }
CONF
    config => <<"CONF",
location = /nchan/pub { nchan_publisher; nchan_channel_id \$arg_id; nchan_redis_pass nchan_redis; }
location = /nchan/sub { nchan_subscriber eventsource; nchan_channel_id \$arg_id; nchan_redis_pass nchan_redis; }
location /mcp { mcp_session zone=mcp; proxy_pass http://127.0.0.1:$backend_port; }
location = /status { mcp_session_status zone=mcp; }
CONF
);

ok(poll_until(10, sub { (decode_json($n->request('GET', '/status')->{body})->{redis}{link} // '') eq 'up' }),
   'this module\'s link to Redis comes up');
$redis->command('DEL', 'mcp:reseeding');
my $created = $n->request('POST', '/mcp', body => '{"jsonrpc":"2.0","id":1,"method":"initialize"}',
    headers => ['Content-Type' => 'application/json', Accept => 'application/json, text/event-stream']);
my $sid = $created->{headers}{'mcp-session-id'}[0] // '';
# Written after the answer, and by a worker whose own link may still be
# coming up: the record arrives within moments, not with the 200.
ok(poll_until(10, sub { $redis->command('EXISTS', 'mcp:s:{0' . unpack('H*', $sid) . '}') }), 'a session goes to Redis');

# nchan, through the same Redis: a subscriber gets what is published.
ok(poll_until(10, sub { $n->request('POST', '/nchan/pub?id=probe', body => 'probe')->{status} =~ /^20[12]$/ }),
   'nchan publishes through Redis');
my $sub = open_stream($n, 'GET', '/nchan/sub?id=news', headers => [Accept => 'text/event-stream']);
$sub->read_until(qr/\r\n\r\n/, 5);
like($sub->data, qr{^HTTP/1\.1 200}, 'an nchan subscriber opens');
ok(poll_until(10, sub { $n->request('POST', '/nchan/pub?id=news', body => 'hello')->{status} =~ /^20[12]$/
                        && $sub->read_until(qr/data: hello/, 0.5) =~ /data: hello/ }),
   'and receives a message published through Redis');
$sub->close;
is($n->request('POST', '/mcp', body => '{"jsonrpc":"2.0","id":2,"method":"ping"}',
    headers => ['Mcp-Session-Id' => $sid, 'Content-Type' => 'application/json',
                Accept => 'application/json, text/event-stream'])->{status}, 200, 'the session still validates');
my $log = $n->error_log;
unlike($log, qr/exited on signal|\[alert\]/, 'no worker crashed');
unlike($log, qr/nchan: Redis .*connection failed/, 'nchan\'s own link to Redis works');

$n->stop;
$backend->stop;
$redis->stop;
done_testing();
