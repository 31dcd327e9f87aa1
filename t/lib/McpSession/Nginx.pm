package McpSession::Nginx;
# One nginx master with the module loaded, in its own prefix directory.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);
use McpSession::Http;

my $repo = abs_path(dirname(__FILE__) . '/../../..');

sub nginx_binary { $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx' }

sub module_path { $ENV{MCP_SESSION_MODULE} // "$repo/build/ngx_mcp_session_module.so" }

sub repo_root { $repo }

# %args: servroot, port, workers, log_level, load_module, main_config,
# http_config, config, user (the `user` directive; root's runs default to
# `user root`).
sub new {
    my ($class, %args) = @_;
    my $self = bless {
        workers     => 1,
        log_level   => 'debug',
        load_module => 1,
        %args,
    }, $class;
    die "servroot and port are required\n" unless $self->{servroot} && $self->{port};
    return $self;
}

sub port     { $_[0]{port} }
sub servroot { $_[0]{servroot} }

sub substitute {
    my ($self, $text) = @_;
    return '' unless defined $text;
    $text =~ s/\$TEST_NGINX_SERVER_PORT\b/$self->{port}/g;
    $text =~ s/\$TEST_NGINX_SERVROOT\b/$self->{servroot}/g;
    $text =~ s/\$TEST_NGINX_HTML_DIR\b/$self->{servroot}\/html/g;
    return $text;
}

sub config_text {
    my ($self) = @_;
    my $root = $self->{servroot};
    my $module = $self->{load_module} ? 'load_module ' . module_path() . ";\n" : '';
    my $user = $self->{user} ? "user $self->{user};\n" : $> == 0 ? "user root;\n" : '';
    my $reuseport = $self->{workers} > 1 ? ' reuseport' : '';
    my $main = $self->substitute($self->{main_config});
    # Under ./build.sh test-asan the sanitizer runtime must reach a new
    # binary too (USR2 upgrade), and nginx passes on only what `env` names.
    $main .= join '', map { "env $_;\n" } grep { defined $ENV{$_} } qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS);
    my $http = $self->substitute($self->{http_config});
    my $server = $self->substitute($self->{config});
    return <<"CONF";
$module${user}daemon on;
master_process on;
worker_processes $self->{workers};
pid $root/logs/nginx.pid;
error_log $root/logs/error.log $self->{log_level};
$main
events { worker_connections 1024; }
http {
    access_log $root/logs/access.log;
    client_body_temp_path $root/tmp/body;
    proxy_temp_path $root/tmp/proxy;
    fastcgi_temp_path $root/tmp/fastcgi;
    uwsgi_temp_path $root/tmp/uwsgi;
    scgi_temp_path $root/tmp/scgi;
$http
    server {
        listen 127.0.0.1:$self->{port}$reuseport;
        server_name localhost;
$server
    }
}
CONF
}

sub write_config {
    my ($self) = @_;
    my $root = $self->{servroot};
    make_path("$root/conf", "$root/logs", "$root/html", "$root/tmp");
    open my $fh, '>', "$root/conf/nginx.conf" or die "write config: $!\n";
    print {$fh} $self->config_text;
    close $fh;
}

sub fresh_servroot {
    my ($self) = @_;
    $self->stop;  # a run that was killed may have left its nginx behind
    remove_tree($self->{servroot});
    $self->write_config;
}

# Runs nginx with extra arguments; returns (exit code, combined output).
sub run_nginx {
    my ($self, @extra) = @_;
    my $root = $self->{servroot};
    my $cmd = join ' ', map { quotemeta } nginx_binary(), '-p', "$root/", '-c', "$root/conf/nginx.conf", @extra;
    my $output = `$cmd 2>&1`;
    return ($? >> 8, $output);
}

sub check_config {
    my ($self) = @_;
    $self->fresh_servroot;
    return $self->run_nginx('-t');
}

sub start {
    my ($self) = @_;
    $self->fresh_servroot;
    return $self->launch;
}

# Stops nginx gracefully and starts it again on the same servroot (logs
# and any files the test keeps there survive).
sub restart {
    my ($self) = @_;
    $self->stop;
    $self->write_config;
    return $self->launch;
}

sub launch {
    my ($self) = @_;
    my ($code, $output) = $self->run_nginx;
    die "nginx failed to start (exit $code):\n$output\n" if $code != 0;
    my $deadline = time + 10;
    until ($self->master_pid && $self->accepting) {
        die "nginx did not come up within 10s\n" . $self->error_log if time > $deadline;
        select(undef, undef, undef, 0.02);
    }
    until (@{ $self->worker_pids } == $self->{workers}) {
        die "nginx workers did not start\n" if time > $deadline;
        select(undef, undef, undef, 0.02);
    }
    return $self;
}

sub accepting {
    my ($self) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port}, Proto => 'tcp');
    return 0 unless $sock;
    close $sock;
    return 1;
}

sub master_pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{servroot}/logs/nginx.pid" or return undef;
    my $pid = <$fh>;
    close $fh;
    return undef unless defined $pid && $pid =~ /^(\d+)/;
    return $1;
}

sub alive { my ($pid) = @_; return $pid && kill(0, $pid) && !zombie($pid) }

sub zombie {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$fh>;
    close $fh;
    return $stat =~ /^\d+ \(.*\) Z /;
}

# Workers, from /proc; includes workers still shutting down.
sub worker_pids { return $_[0]->children_titled(qr/^nginx: worker process/) }

# The cache manager and loader that proxy_cache_path starts.
sub helper_pids { return $_[0]->children_titled(qr/^nginx: cache (?:manager|loader) process/) }

# Live children of the master whose process title matches.
sub children_titled {
    my ($self, $title) = @_;
    my $master = $self->master_pid or return [];
    my @pids;
    opendir my $dh, '/proc' or return [];
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        close $fh;
        next unless $stat && $stat =~ /^\d+ \((.*)\) (\S) (\d+)/;
        next unless $3 == $master && $1 eq 'nginx' && $2 ne 'Z';
        open my $cmd, '<', "/proc/$pid/cmdline" or next;
        my $cmdline = do { local $/; <$cmd> } // '';
        close $cmd;
        push @pids, $pid if $cmdline =~ $title;
    }
    closedir $dh;
    return [sort { $a <=> $b } @pids];
}

# Rewrites the configuration and reloads; waits until every old worker
# has exited and the new ones are all up. Returns true on success.
sub reload {
    my ($self, %args) = @_;
    @{$self}{ keys %args } = values %args;
    $self->write_config;
    my %old = map { $_ => 1 } @{ $self->worker_pids };
    kill 'HUP', $self->master_pid;
    my $deadline = time + 15;
    while (time < $deadline) {
        my @now = @{ $self->worker_pids };
        return 1 if @now == $self->{workers} && !grep { $old{$_} } @now;
        select(undef, undef, undef, 0.02);
    }
    return 0;
}

sub stop {
    my ($self) = @_;
    my $pid = $self->master_pid or return;
    for my $signal (qw(QUIT TERM KILL)) {
        kill $signal, $pid;
        my $deadline = time + ($signal eq 'QUIT' ? 10 : 3);
        while (time < $deadline) {
            return 1 unless alive($pid);
            select(undef, undef, undef, 0.02);
        }
    }
    return 0;
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{servroot}/logs/error.log" or return '';
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text // '';
}

# Calls $check until it returns true or $secs pass; returns its last
# value. Tests wait for what nginx does later (timers, other workers, the
# log phase) with this, never with a fixed sleep.
sub poll_until {
    my ($secs, $check) = @_;
    my $deadline = time + $secs;
    while (1) {
        my $value = $check->();
        return $value if $value || time >= $deadline;
        select(undef, undef, undef, 0.02);
    }
}

# Polls the error log until it matches or the deadline passes.
sub wait_for_log {
    my ($self, $re, $secs) = @_;
    return poll_until($secs // 5, sub { $self->error_log =~ $re }) ? 1 : 0;
}

# request($method, $uri, headers => [Name => value, ...], body => $text)
sub request {
    my ($self, $method, $uri, %opt) = @_;
    my $bytes = McpSession::Http::build_request($method, $uri, %opt);
    return McpSession::Http::send_raw($self->{port}, $bytes, $opt{timeout});
}

sub raw_request {
    my ($self, $bytes, $timeout) = @_;
    return McpSession::Http::send_raw($self->{port}, $bytes, $timeout);
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@);
    $self->stop if $self->{started_by_api};
}

1;
