# $mcp_method, $mcp_tool and $mcp_rpc_id: read from the first 64 KB of a
# POST body (issue mode's sessionless POSTs always; other POSTs with
# mcp_session_inspect_body on), usable in log_format, map and
# proxy_set_header, capped and cleaned so they can go into a log line or a
# header; the backend still gets the body unchanged. Two workers.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;

my $http = <<'CONF';
mcp_session_zone zone=mcp:1m;
log_format mcp_json escape=json '{"status":$status,"session":"$mcp_session_id","method":"$mcp_method",'
                                '"tool":"$mcp_tool","rpc_id":"$mcp_rpc_id","uri":"$request_uri"}';
CONF
my $config = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    mcp_session_inspect_body on;
    access_log $TEST_NGINX_SERVROOT/logs/mcp.log mcp_json;
    add_header X-Method $mcp_method always;
    add_header X-Tool $mcp_tool always;
    add_header X-Rpc-Id $mcp_rpc_id always;
    proxy_set_header X-Mcp-Tool $mcp_tool;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /plain {
    mcp_session zone=mcp;
    add_header X-Method "[$mcp_method]" always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /imcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    add_header X-Method $mcp_method always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend {
    add_header Mcp-Session-Id $arg_sid;
    add_header X-Backend-Saw "$http_x_mcp_tool|$http_content_length";
    return 200 "ok\n";
}
CONF

sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }
sub post { my ($n, $uri, $body, @headers) = @_; return $n->request('POST', $uri, headers => [@headers], body => $body) }

my $n = start_nginx(workers => 2, log_level => 'info', http_config => $http, config => $config);

my $init = post($n, '/mcp?sid=v-1', '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}');
is(h($init, 'X-Method'), 'initialize', 'learn mode, inspect on: $mcp_method of an initialize');
is(h($init, 'X-Rpc-Id'), '1', '... $mcp_rpc_id');

my $call = '{"jsonrpc":"2.0","id":"c-7","method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Oslo"}}}';
my $res = post($n, '/mcp', $call, 'Mcp-Session-Id' => 'v-1');
is($res->{status}, 200, 'a tools/call of a live session');
is(h($res, 'X-Method'), 'tools/call', '$mcp_method');
is(h($res, 'X-Tool'), 'get_weather', '$mcp_tool: the tool name');
is(h($res, 'X-Rpc-Id'), '"c-7"', '$mcp_rpc_id: the id as JSON text');
is(h($res, 'X-Backend-Saw'), 'get_weather|' . length($call), 'proxy_set_header carries it; the body reached the backend whole');

is(h(post($n, '/mcp', '{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"file:///notes.txt"}}',
    'Mcp-Session-Id' => 'v-1'), 'X-Tool'), 'file:///notes.txt', '$mcp_tool of resources/read is the URI');
is(h(post($n, '/mcp', '[{"jsonrpc":"2.0","method":"notifications/initialized"}]', 'Mcp-Session-Id' => 'v-1'), 'X-Method'),
    'batch', 'a batch: $mcp_method is "batch"');

my $evil = '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"x\r\nX-Injected: yes"}}';
my $inj = post($n, '/mcp', $evil, 'Mcp-Session-Id' => 'v-1');
is(h($inj, 'X-Backend-Saw'), 'x??X-Injected: yes|' . length($evil), 'CR/LF in a tool name cannot inject a header');
is(h($inj, 'X-Injected'), '', '... into the answer either');

my $big = '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"upload","arguments":{"blob":"' . ('b' x 200000) . '"}}}';
my $large = post($n, '/mcp', $big, 'Mcp-Session-Id' => 'v-1');
is(h($large, 'X-Tool'), 'upload', 'a 200 KB body: named from its first 64 KB');
is(h($large, 'X-Backend-Saw'), 'upload|' . length($big), '... and passed on whole');

is(h(post($n, '/plain', $call, 'Mcp-Session-Id' => 'v-1'), 'X-Method'), '[]', 'learn mode without the directive reads no body');
is(h(post($n, '/imcp', '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'), 'X-Method'), 'initialize',
    'issue mode: sessionless POSTs are read anyway');

my $log = $n->servroot . '/logs/mcp.log';
my @lines;
ok(poll_until(10, sub {
    open my $fh, '<', $log or return 0;
    @lines = <$fh>;
    return @lines >= 6;  # the six requests to /mcp
}), 'the JSON access log has the lines');
my ($tool_line) = grep { /get_weather/ } @lines;
my $doc = eval { decode_json($tool_line) };
ok($doc, 'a log line is valid JSON') or diag($tool_line);
is_deeply([@$doc{qw(method tool rpc_id session)}], ['tools/call', 'get_weather', '"c-7"', 'v-1'], '... with method, tool, id, session');
my ($evil_line) = grep { /X-Injected/ } @lines;
ok(eval { decode_json($evil_line) }, 'the hostile tool name still gives a valid JSON line');
done_testing();
