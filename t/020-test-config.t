# `nginx -t` checks the configuration and nothing else: it reads no state
# file, restores nothing and opens no worker descriptors.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
my $state = "$dir/mcp.state";
my $config = <<'CONF';
location /mcp { mcp_session zone=mcp; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
CONF
my %args = (workers => 2, log_level => 'info', http_config => "mcp_session_zone zone=mcp:1m state=$state;", config => $config);

my $n = start_nginx(%args);
is($n->request('POST', "/mcp?sid=s$_", body => '{}')->{status}, 200, "session s$_") for 1 .. 3;
$n->stop;
ok(-s $state, 'the sessions were saved at stop');
my @before = stat($state);

my ($rc, $out) = $n->run_nginx('-t');
is($rc, 0, 'nginx -t passes');
like($out, qr/test is successful/, '... and says so');
unlike($out . $n->error_log, qr/restored \d+ sessions/, 'nginx -t restores nothing from the state file');
my @after = stat($state);
is("@after[1,7,9]", "@before[1,7,9]", 'the state file is untouched (inode, size, mtime)');

$n->restart;
like($n->error_log, qr/restored 3 sessions/, 'a real start still restores them');
is($n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => 's2'], body => '{}')->{status}, 200, 'and they are valid');
done_testing();
