# MCP traffic in the status endpoint's Prometheus output: requests per
# JSON-RPC method with answers by status class and an upstream latency
# histogram, tools/call per tool (bounded: the first 32 names, then
# "other"; unprintable names are "other"), and the module's own answers by
# reason. The scrape passes `promtool check metrics` (Debian's prometheus
# package). Two workers write the same shared counters.
#
# Then, a second nginx: JSON-RPC errors in backend answers (JSON and SSE)
# by method and code class, tools/call results with isError, exact HTTP
# statuses, and mcp_session_tracked_tools (configured names only, others
# "other", re-applied at reload keeping the counters of names that stay).
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use File::Temp qw(tempfile);

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
sub call_tool { my ($name) = @_; return qq({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"$name","arguments":{}}}) }

# The log phase counts a request after its answer is sent, and with two
# workers the last request's log phase may run before the one of the
# request just before it: a scrape is read once every request made is in
# the requests counter, the sum over its methods.
sub counted_requests {
    my ($scrape) = @_;
    my $sum = 0;
    $sum += $1 while $scrape =~ /^mcp_session_requests_total\{[^}]*\} (\d+)$/mg;
    return $sum;
}

my $n = start_nginx(
    workers     => 2,
    http_config => 'mcp_session_zone zone=mcp:2m;',
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_inspect_body on;   # method and tool of every POST, not only sessionless ones
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend {
    if ($arg_fail) { return 500 "broken\n"; }
    return 200 '{"jsonrpc":"2.0","id":1,"result":{}}';
}
location = /status { mcp_session_status zone=mcp; }
CONF

my $res = $n->request('POST', '/mcp', body => $initialize);
is($res->{status}, 200, 'initialize');
my $sid = $res->{headers}{'mcp-session-id'}[0];
sub post { my ($body, $uri) = @_; return $n->request('POST', $uri // '/mcp', headers => ['Mcp-Session-Id' => $sid], body => $body)->{status} }

is(post('{"jsonrpc":"2.0","id":2,"method":"tools/list"}'), 200, 'tools/list');
is(post(call_tool('echo')), 200, "tools/call echo ($_)") for 1 .. 3;
is(post(call_tool('add'), '/mcp?fail=1'), 500, 'tools/call add, answered 500 by the backend');
is(post(call_tool("bad\\u0001name")), 200, 'a tool name with a control byte');
is(post(call_tool("tool-$_")), 200, "tools/call tool-$_") for 1 .. 31;  # fills the 32 slots with echo, add... and more
is(post('{"jsonrpc":"2.0","id":4,"method":"vendor/custom"}'), 200, 'an unknown method');
is($n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => 'gone'], body => call_tool('echo'))->{status}, 404, 'an unknown session: 404');
is($n->request('POST', '/mcp', headers => ['Origin' => 'https://evil.example'], body => $initialize)->{status}, 403, 'a foreign Origin: 403');

my $text;
ok(poll_until(5, sub {
    $text = $n->request('GET', '/status?format=prometheus')->{body};
    counted_requests($text) == 41;
}), 'the scrape has all 41 requests (the log phase runs after the answer)');

sub sample { my ($re) = @_; return $text =~ /^$re (\S+)$/m ? $1 : undef }

is(sample(qr/mcp_session_requests_total\{zone="mcp",method="initialize"\}/), 1, 'initialize: 1 request');
is(sample(qr/mcp_session_requests_total\{zone="mcp",method="none"\}/), 2, 'the 404 and the 403, refused before their bodies were read: "none"');
is(sample(qr/mcp_session_requests_total\{zone="mcp",method="tools\/list"\}/), 1, 'tools/list: 1');
is(sample(qr/mcp_session_requests_total\{zone="mcp",method="tools\/call"\}/), 36, 'tools/call: 36');
is(sample(qr/mcp_session_requests_total\{zone="mcp",method="other"\}/), 1, 'an unknown method is "other"');
is(sample(qr/mcp_session_requests_responses_total\{zone="mcp",method="tools\/call",status_class="5xx"\}/), 1, 'tools/call: one 5xx');
is(sample(qr/mcp_session_requests_responses_total\{zone="mcp",method="tools\/call",status_class="2xx"\}/), 35, 'tools/call: 35 2xx');
is(sample(qr/mcp_session_tool_calls_total\{zone="mcp",tool="echo"\}/), 3, 'the echo tool: 3 calls');
is(sample(qr/mcp_session_tool_calls_total\{zone="mcp",tool="add"\}/), 1, 'the add tool: 1 call');
is(sample(qr/mcp_session_tool_calls_responses_total\{zone="mcp",tool="add",status_class="5xx"\}/), 1, '... answered 5xx');
is(scalar(() = $text =~ /^mcp_session_tool_calls_total\{/mg), 33, 'tool labels are bounded: 32 names and "other"');
is(sample(qr/mcp_session_tool_calls_total\{zone="mcp",tool="other"\}/), 2, 'the names past the 32nd are "other"');
unlike($text, qr/[\x00-\x08\x0b-\x1f\x7f]/, 'no control byte reaches the scrape');
is(sample(qr/mcp_session_tool_calls_total\{zone="mcp",tool="bad\?name"\}/), 1, 'a control byte in a tool name is shown as "?" (as in $mcp_tool)');
is(sample(qr/mcp_session_own_answers_total\{zone="mcp",reason="session_not_found"\}/), 1, "nginx's own 404, by reason");

# The latency histogram: cumulative buckets ending in +Inf = count.
my %buckets = $text =~ /^mcp_session_requests_duration_seconds_bucket\{zone="mcp",method="tools\/list",le="([^"]+)"\} (\d+)$/mg;
is($buckets{'+Inf'}, 1, 'tools/list histogram: one timed request');
is(sample(qr/mcp_session_requests_duration_seconds_count\{zone="mcp",method="tools\/list"\}/), 1, '... its count');
my @order = map { $_->[1] } sort { $a->[0] <=> $b->[0] } map { [$_ eq '+Inf' ? 9**9 : $_, $buckets{$_}] } keys %buckets;
is_deeply(\@order, [sort { $a <=> $b } @order], 'buckets are cumulative');

# promtool, from Debian's prometheus package.
my ($fh, $file) = tempfile(UNLINK => 1);
print {$fh} $text;
close $fh;
my $lint = `promtool check metrics < $file 2>&1`;
is($? >> 8, 0, 'promtool check metrics accepts the scrape') or diag($lint);

unlike($n->error_log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit|emerg)\]/, 'no crash or alert');
$n->stop;

sub promtool_ok {
    my ($scrape, $what) = @_;
    my ($out, $path) = tempfile(UNLINK => 1);
    print {$out} $scrape;
    close $out;
    my $said = `promtool check metrics < $path 2>&1`;
    is($? >> 8, 0, "promtool check metrics accepts $what") or diag($said);
}

# Backend answers by path: /mcp/X is proxied to /backend/X.
my $backends = <<'CONF';
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_inspect_body on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    proxy_http_version 1.1;
    proxy_buffering off;
}
# The same backends through a stream-on location: the relay that records
# an SSE answer hands each event's data to the answer watch.
location /mcps {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_inspect_body on;
    mcp_session_stream on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    proxy_http_version 1.1;
    proxy_buffering off;
}
location /backend {
    default_type application/json;
    return 200 '{"jsonrpc":"2.0","id":1,"result":{}}';
}
location /backend/json {
    default_type application/json;
    return 200 '{"jsonrpc":"2.0","id":3,"error":{"code":$arg_code,"message":"no"}}';
}
location /backend/batch {
    default_type "application/json; charset=utf-8";
    return 200 '[{"jsonrpc":"2.0","id":1,"error":{"code":-32601}},{"jsonrpc":"2.0","id":2,"result":{}},{"jsonrpc":"2.0","id":3,"error":{"code":-32099}}]';
}
location /backend/sse {
    default_type text/event-stream;
    return 200 ": hello\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"error\":{}}}\r\n\r\nid: 9\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\r\ndata: \"error\":{\"code\":$arg_code,\"message\":\"no\"}}\r\n\r\n";
}
location /backend/tool-error {
    default_type application/json;
    return 200 '{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}';
}
location /backend/sse-tool-error {
    default_type text/event-stream;
    return 200 "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"isError\":true}}\n\n";
}
location /backend/limited {
    default_type application/json;
    return 429 '{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"slow down"}}';
}
location /backend/text {
    default_type text/plain;
    return 400 '{"jsonrpc":"2.0","id":3,"error":{"code":-32600}}';
}
location /backend/teapot { return 418 "short and stout\n"; }
location = /status { mcp_session_status zone=mcp; }
CONF

my $m = start_nginx(
    workers     => 2,
    http_config => "mcp_session_zone zone=mcp:2m;\nmcp_session_tracked_tools zone=mcp echo add search;",
    config      => $backends);
$res = $m->request('POST', '/mcp', body => $initialize);
is($res->{status}, 200, 'second nginx: initialize');
$sid = $res->{headers}{'mcp-session-id'}[0];
my $made_m = 1;
sub post_m {
    my ($uri, $body) = @_;
    ++$made_m;
    my $r = $m->request('POST', $uri, headers => ['Mcp-Session-Id' => $sid, 'Accept' => 'application/json, text/event-stream'], body => $body);
    return $r;
}
my $list = '{"jsonrpc":"2.0","id":3,"method":"tools/list"}';
my %sent = ('-32700' => 1, '-32600' => 1, '-32601' => 2, '-32602' => 1, '-32603' => 1, '-32000' => 1, '-32050' => 1, '-1' => 1);
for my $code (sort keys %sent) {
    my $r = post_m("/mcp/json?code=$code", $list) for 1 .. $sent{$code};
}
is(post_m('/mcp/json?code=-32601', $list)->{body}, '{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}', 'the answer reaches the client unchanged');
my $sse = post_m('/mcp/sse?code=-32602', '{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p"}}');
like($sse->{body}, qr/"code":-32602,"message":"no"\}\}\r\n\r\n\z/, 'an SSE answer reaches the client unchanged');
post_m('/mcp/sse?code=-32603', '{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p"}}');
my $recorded = post_m('/mcps/sse?code=-32602', '{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"u"}}');
like($recorded->{body}, qr/^id: \d+\.2\nevent: message\ndata: \{"jsonrpc":"2.0","id":3,\ndata: "error":\{"code":-32602/m, 'a recorded SSE answer: relayed with nginx\'s ids');
post_m('/mcp/batch', '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]');
post_m('/mcp/tool-error', call_tool('add'));
post_m('/mcp/sse-tool-error', call_tool('echo'));
post_m('/mcp', call_tool('echo'));
post_m('/mcp/tool-error', $list);   # isError outside tools/call: not a tool error
post_m('/mcp/limited', $list);
post_m('/mcp/text', $list);         # not JSON by its type: not read
post_m('/mcp/teapot', call_tool('unlisted'));
is(post_m('/mcp', call_tool('unlisted-too'))->{status}, 200, 'the last request');

my $scrape;
ok(poll_until(5, sub {
    $scrape = $m->request('GET', '/status?format=prometheus')->{body};
    counted_requests($scrape) == $made_m;
}), 'the scrape has every request');
sub value_of { my ($re) = @_; return $scrape =~ /^$re (\S+)$/m ? $1 : 0 }
is(value_of(qr/mcp_session_tool_calls_total\{zone="mcp",tool="other"\}/), 2, 'two unlisted names are other');
sub errors { my ($method, $class) = @_; return value_of(qr/mcp_session_jsonrpc_errors_total\{zone="mcp",method="\Q$method\E",class="$class"\}/) }

like($scrape, qr/^# HELP mcp_session_jsonrpc_errors_total .+\n# TYPE mcp_session_jsonrpc_errors_total counter$/m, 'errors: HELP and TYPE');
is(errors('tools/list', 'parse_error'), 1, 'tools/list: -32700 is parse_error');
is(errors('tools/list', 'invalid_request'), 1, 'tools/list: -32600 is invalid_request');
is(errors('tools/list', 'method_not_found'), 3, 'tools/list: -32601 three times');
is(errors('tools/list', 'invalid_params'), 1, 'tools/list: -32602');
is(errors('tools/list', 'internal_error'), 1, 'tools/list: -32603');
is(errors('tools/list', 'server_error'), 3, 'tools/list: -32000, -32050 and the 429 answer\'s -32000 are server_error');
is(errors('tools/list', 'other'), 1, 'tools/list: -1 is other');
is(errors('tools/list', 'tool_error'), 0, 'tools/list: isError outside tools/call is no tool_error');
is(errors('prompts/get', 'invalid_params'), 1, 'an SSE answer: the event data is read (two data lines, CRLF)');
is(errors('prompts/get', 'internal_error'), 1, '... and another');
is(scalar(() = $scrape =~ /^mcp_session_jsonrpc_errors_total\{zone="mcp",method="prompts\/get"/mg), 2, '... the notification before it is no error');
is(errors('resources/read', 'invalid_params'), 1, 'a recorded SSE answer (stream on): its event\'s error counts once');
is(scalar(() = $scrape =~ /^mcp_session_jsonrpc_errors_total\{zone="mcp",method="resources\/read"/mg), 1, '... and nothing else of it');
is(errors('batch', 'method_not_found'), 1, 'a batch answer: each error counts');
is(errors('batch', 'server_error'), 1, '... by its own code');
is(errors('tools/call', 'tool_error'), 2, 'tools/call results with isError: JSON and SSE');
unlike($scrape, qr/class="invalid_request"\} [2-9]/, 'a text/plain answer is not read');

is(value_of(qr/mcp_session_http_responses_total\{zone="mcp",method="tools\/list",status="429"\}/), 1, 'exact status 429');
is(value_of(qr/mcp_session_http_responses_total\{zone="mcp",method="tools\/list",status="400"\}/), 1, 'exact status 400');
is(value_of(qr/mcp_session_http_responses_total\{zone="mcp",method="tools\/call",status="other"\}/), 1, 'a status off the list (418) is other');
is(value_of(qr/mcp_session_http_responses_total\{zone="mcp",method="initialize",status="200"\}/), 1, 'initialize: one 200');
like($scrape, qr/^# TYPE mcp_session_http_responses_total counter$/m, 'statuses: TYPE');

is(value_of(qr/mcp_session_tool_calls_total\{zone="mcp",tool="echo"\}/), 2, 'a configured tool: echo 2 calls');
is(value_of(qr/mcp_session_tool_calls_total\{zone="mcp",tool="add"\}/), 1, 'add 1 call');
like($scrape, qr/^mcp_session_tool_calls_total\{zone="mcp",tool="search"\} 0$/m, 'a configured tool never called is there, at 0');
is(scalar(() = $scrape =~ /^mcp_session_tool_calls_total\{/mg), 4, 'exactly the configured names and "other"');
unlike($scrape, qr/tool="unlisted/, 'unconfigured names get no label of their own');
promtool_ok($scrape, 'the scrape with errors and statuses');

# A reload re-applies the names: echo stays (and keeps its count), add and
# search go, fetch comes.
ok($m->reload(http_config => "mcp_session_zone zone=mcp:2m;\nmcp_session_tracked_tools zone=mcp fetch echo;"), 'reload with other tracked tools');
post_m('/mcp', call_tool('echo'));
is(post_m('/mcp', call_tool('add'))->{status}, 200, 'add, no longer tracked');
ok(poll_until(5, sub {
    $scrape = $m->request('GET', '/status?format=prometheus')->{body};
    counted_requests($scrape) == $made_m;
}), 'after the reload: the scrape has every request');
is(value_of(qr/mcp_session_tool_calls_total\{zone="mcp",tool="other"\}/), 3, 'after the reload: add counts as other');
is(value_of(qr/mcp_session_tool_calls_total\{zone="mcp",tool="echo"\}/), 3, 'echo kept its counter across the reload');
like($scrape, qr/^mcp_session_tool_calls_total\{zone="mcp",tool="fetch"\} 0$/m, 'fetch has its slot');
is(scalar(() = $scrape =~ /^mcp_session_tool_calls_total\{/mg), 3, 'exactly echo, fetch and other');
is(errors('tools/list', 'method_not_found'), 3, 'the error counters survive the reload');

# Without the directive, new names get slots by first use again; the
# configured ones stay.
ok($m->reload(http_config => "mcp_session_zone zone=mcp:2m;"), 'reload without tracked tools');
post_m('/mcp', call_tool('fresh'));
ok(poll_until(5, sub {
    $scrape = $m->request('GET', '/status?format=prometheus')->{body};
    counted_requests($scrape) == $made_m;
}), 'the scrape has every request');
is(value_of(qr/mcp_session_tool_calls_total\{zone="mcp",tool="fresh"\}/), 1, 'a new name has its own slot again');
is(value_of(qr/mcp_session_tool_calls_total\{zone="mcp",tool="echo"\}/), 3, 'echo still there');
promtool_ok($scrape, 'the scrape after the reloads');

unlike($m->error_log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit|emerg)\]/, 'second nginx: no crash or alert');
$m->stop;
done_testing();
