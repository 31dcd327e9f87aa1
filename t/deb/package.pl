# The Debian package, as an operator meets it: lintian finds no error; it
# installs into this machine's nginx and enables itself; nginx -t passes
# with a site that uses mcp_session; nginx started from /etc/nginx serves a
# real session; purge leaves no file behind. Needs root (it changes
# /etc/nginx and the dpkg database, and puts both back); run by
# ./build.sh test and ./build.sh test-deb with DEB_FILE set.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use File::Spec;
use McpSession::Http;
use McpSession::Nginx;
use McpSession::TestNginx ();

my $deb = $ENV{DEB_FILE} or plan skip_all => 'DEB_FILE is not set (run ./build.sh test-deb)';
$deb = File::Spec->rel2abs($deb);  # apt-get takes a package file only as a path
plan skip_all => 'installing a package needs root' if $> != 0;

my $package = 'libnginx-mod-http-mcp-session';
my $so = '/usr/lib/nginx/modules/ngx_mcp_session_module.so';
my $load = '/usr/share/nginx/modules-available/mod-http-mcp-session.conf';
my $enabled = '/etc/nginx/modules-enabled/50-mod-http-mcp-session.conf';
my $site = '/etc/nginx/conf.d/zz-mcp-session-package-test.conf';
my $pidfile = '/run/nginx.pid';

# Runs a command (arguments quoted for the shell); returns (exit code, output).
sub run { my $cmd = join ' ', map { quotemeta } @_; my $out = `$cmd 2>&1`; return ($? >> 8, $out) }
sub port_taken {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1);
    return $s ? 1 : 0;
}
sub master_pid { open my $fh, '<', $pidfile or return 0; my $p = <$fh> // ''; chomp $p; return $p =~ /^\d+$/ ? $p : 0 }
sub h { my ($res, $name) = @_; return $res->{headers}{lc $name}[0] // '' }

# Whatever happens, /etc/nginx is left as it was found.
END { unlink $site if defined $site && -e $site }

# ---- the package itself
my ($lrc, $lint) = run('lintian', '--fail-on', 'error', '--tag-display-limit', '0', $deb);
is($lrc, 0, 'lintian reports no error') or diag($lint);
unlike($lint, qr/^E: /m, '... and prints no E: line');

my ($crc, $contents) = run('dpkg-deb', '--contents', $deb);
like($contents, qr{\./usr/lib/nginx/modules/ngx_mcp_session_module\.so$}m, 'the .so goes to /usr/lib/nginx/modules');
like($contents, qr{\./usr/share/nginx/modules-available/mod-http-mcp-session\.conf$}m, 'its load file to modules-available');
like($contents, qr{\./usr/share/doc/$package/examples/mcp-site\.conf$}m, 'an example site in the docs');
like($contents, qr{\./usr/share/doc/$package/copyright$}m, 'a copyright file');
my (undef, $depends) = run('dpkg-deb', '--field', $deb, 'Depends');
my (undef, $abi) = run('dpkg-query', '-W', '-f', '${Provides}', 'nginx');
my ($nginx_abi) = $abi =~ /(nginx-abi-[\w.-]+)/;
ok($nginx_abi, "this machine's nginx provides an ABI ($abi)");
like($depends, qr/\Q$nginx_abi\E/, "the package depends on exactly that ABI ($nginx_abi)");

# ---- install
my ($irc, $iout) = run('env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '--no-install-recommends', $deb);
is($irc, 0, 'apt-get install ./…deb') or diag($iout);
ok(-f $so, 'the module is installed');
is(readlink($enabled) // '', $load, 'the maintainer script enabled it in modules-enabled');
my (undef, $files) = run('dpkg-query', '-L', $package);
my @owned = grep { m{^/} && -f $_ } split /\n/, $files;
ok(scalar(@owned) >= 4, 'dpkg knows the package\'s files (' . scalar(@owned) . ')');

# ---- a site that uses the module, through /etc/nginx
my $port = McpSession::TestNginx::free_port();
open my $fh, '>', $site or die "$site: $!\n";
print {$fh} <<"CONF";
mcp_session_zone zone=mcp_package_test:1m;
server {
    listen 127.0.0.1:$port;
    location /mcp {
        mcp_session zone=mcp_package_test;
        add_header X-Session-Status \$mcp_session_status always;
        proxy_pass http://127.0.0.1:$port/backend;
    }
    location /backend { add_header Mcp-Session-Id \$arg_sid; return 200 "ok\\n"; }
}
CONF
close $fh;
my ($trc, $tout) = run('/usr/sbin/nginx', '-t');
is($trc, 0, 'nginx -t passes with /etc/nginx and a site using mcp_session') or diag($tout);

SKIP: {
    skip 'a system nginx is already running: not started a second time', 5 if master_pid() && kill(0, master_pid());
    skip 'port 80 (the default site) is taken on this machine', 5 if port_taken(80);
    my ($src, $sout) = run('/usr/sbin/nginx');
    is($src, 0, 'nginx starts from /etc/nginx/nginx.conf') or diag($sout);
    ok(McpSession::Nginx::poll_until(10, sub { port_taken($port) }), 'the site listens');
    my $init = McpSession::Http::send_raw($port, McpSession::Http::build_request('POST', '/mcp?sid=deb-session', body => '{}'));
    is(h($init, 'Mcp-Session-Id'), 'deb-session', 'a session is made through the packaged module');
    my $use = McpSession::Http::send_raw($port,
        McpSession::Http::build_request('POST', '/mcp', headers => ['Mcp-Session-Id' => 'deb-session'], body => '{}'));
    is(h($use, 'X-Session-Status'), 'valid', '... and validated');
    my $pid = master_pid();
    run('/usr/sbin/nginx', '-s', 'quit');
    ok(McpSession::Nginx::poll_until(15, sub { !kill(0, $pid) }), 'nginx stops');
}
unlink $site;

# ---- purge
my ($prc, $pout) = run('env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'purge', '-y', $package);
is($prc, 0, 'apt-get purge') or diag($pout);
my @left = grep { -e $_ || -l $_ } (@owned, $enabled, "$enabled.removed");
is("@left", '', 'purge leaves no file behind');
my (undef, $status) = run('dpkg-query', '-W', '-f', '${Status}', $package);
unlike($status, qr/installed/, 'dpkg no longer lists it as installed');
my ($arc) = run('/usr/sbin/nginx', '-t');
is($arc, 0, 'nginx -t passes again without it');
done_testing();
