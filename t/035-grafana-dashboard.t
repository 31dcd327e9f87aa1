# The Grafana dashboard in contrib/grafana: valid JSON, every panel has a
# query, every query is valid PromQL (promtool check rules, with the
# dashboard's $zone variable filled in), and every metric a query names is
# one the module exports: checked against a real scrape after MCP traffic.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);

my $file = McpSession::Nginx::repo_root() . '/contrib/grafana/ngx_mcp_session.json';
open my $fh, '<', $file or die "$file: $!\n";
my $dashboard = eval { JSON::PP->new->decode(do { local $/; <$fh> }) };
close $fh;
ok($dashboard, 'the dashboard is valid JSON') or BAIL_OUT($@);

my @exprs;
for my $panel (@{ $dashboard->{panels} }) {
    my @targets = @{ $panel->{targets} // [] };
    ok(scalar(@targets) > 0, "panel \"$panel->{title}\" has a query");
    push @exprs, map { $_->{expr} } @targets;
}
push @exprs, map { $_->{query} =~ /label_values\((\w+)/ ? $1 : () } @{ $dashboard->{templating}{list} };
cmp_ok(scalar(@exprs), '>=', 10, 'the dashboard has queries');

# PromQL syntax: each query as a recording rule for promtool.
my $dir = tempdir(CLEANUP => 1);
open my $rules, '>', "$dir/rules.yml" or die;
print {$rules} "groups:\n  - name: dashboard\n    rules:\n";
for my $i (0 .. $#exprs) {
    (my $expr = $exprs[$i]) =~ s/\$zone/.*/g;
    $expr =~ s/'/''/g;
    print {$rules} "      - record: dashboard:query$i\n        expr: '$expr'\n";
}
close $rules;
my $check = `promtool check rules $dir/rules.yml 2>&1`;
is($? >> 8, 0, 'every query is valid PromQL (promtool check rules)') or diag($check);

# The metrics the module exports, from a scrape after traffic of every kind.
my $n = start_nginx(
    workers     => 2,
    http_config => "mcp_session_zone zone=mcp:2m;\n"
                 . "upstream self { server 127.0.0.1:\$TEST_NGINX_SERVER_PORT; mcp_session_sticky; }",
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    mcp_session_inspect_body on;
    proxy_pass http://self/backend;
}
location /backend { default_type application/json; return 200 '{"jsonrpc":"2.0","id":1,"result":{}}'; }
location /backend/error { default_type application/json; return 200 '{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}'; }
location = /status { mcp_session_status zone=mcp; }
CONF
my $res = $n->request('POST', '/mcp', body => '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}');
my $sid = $res->{headers}{'mcp-session-id'}[0];
$n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $sid],
    body => '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}');
$n->request('POST', '/mcp/error', headers => ['Mcp-Session-Id' => $sid], body => '{"jsonrpc":"2.0","id":3,"method":"vendor/x"}');
$n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => 'gone'], body => '{}');
my $scrape;
poll_until(5, sub {
    $scrape = $n->request('GET', '/status?format=prometheus')->{body};
    $scrape =~ /^mcp_session_own_answers_total\{zone="mcp",reason="session_not_found"\} 1$/m;
});
my %exported = map { /^([a-z_]+)/ ? ($1 => 1) : () } grep { !/^#/ } split /\n/, $scrape;
cmp_ok(scalar(keys %exported), '>', 20, 'the scrape names the module\'s metrics');

my %named = map { $_ => 1 } map { /\b(mcp_session_[a-z_]+)/g } @exprs;
for my $metric (sort keys %named) {
    ok($exported{$metric}, "the dashboard's $metric is exported");
}
ok($named{$_}, "the dashboard shows $_")
    for qw(mcp_session_zone_sessions mcp_session_zone_open_streams mcp_session_own_answers_total
           mcp_session_tool_calls_total mcp_session_tool_calls_duration_seconds_bucket
           mcp_session_jsonrpc_errors_total mcp_session_http_responses_total
           mcp_session_upstream_sessions mcp_session_sessions_replica_lost_total);

$n->stop;
done_testing();
