# MCP traffic in the status endpoint's Prometheus output: requests per
# JSON-RPC method with answers by status class and an upstream latency
# histogram, tools/call per tool (bounded: the first 32 names, then
# "other"; unprintable names are "other"), and the module's own answers by
# reason. The scrape passes `promtool check metrics` (Debian's prometheus
# package). Two workers write the same shared counters.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use File::Temp qw(tempfile);

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
sub call_tool { my ($name) = @_; return qq({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"$name","arguments":{}}}) }

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
    $text =~ /^mcp_session_own_answers_total\{zone="mcp",reason="forbidden"\} 1$/m;
}), 'the scrape has the last request (the log phase runs after the answer)');

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
done_testing();
