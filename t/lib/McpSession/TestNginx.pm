package McpSession::TestNginx;
# The project's runner for Test::Nginx::Socket-style .t files (see
# DESIGN.md §8), plus a plain-Perl API for tests that need control flow.
use strict;
use warnings;
use Exporter 'import';
use File::Basename qw(basename);
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);
use McpSession::Blocks;
use McpSession::Http;
use McpSession::Nginx;
use McpSession::Stream;

our @EXPORT = qw(workers log_level no_module run_tests start_nginx open_stream server_port poll_until free_port
                 htpasswd_file);

sub poll_until { McpSession::Nginx::poll_until(@_) }

my %file_settings = (workers => 1, log_level => 'debug', load_module => 1);
my $port;

sub workers   { $file_settings{workers} = shift }
sub log_level { $file_settings{log_level} = shift }
sub no_module { $file_settings{load_module} = 0 }

# A loopback port nothing listens on right now.
sub free_port {
    my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, ReuseAddr => 1)
        or die "no free port: $!\n";
    my $free = $probe->sockport;
    close $probe;
    return $free;
}

# An auth_basic_user_file in $dir with one user (nginx's {PLAIN} scheme).
sub htpasswd_file {
    my ($dir, $user, $password) = @_;
    my $file = "$dir/htpasswd";
    open my $fh, '>', $file or die "$file: $!\n";
    print {$fh} "$user:{PLAIN}$password\n";
    close $fh;
    return $file;
}

# One free port per test file, unless TEST_NGINX_SERVER_PORT fixes it.
sub server_port {
    return $port if $port;
    $port = $ENV{TEST_NGINX_SERVER_PORT} || free_port();
    $ENV{TEST_NGINX_SERVER_PORT} = $port;
    return $port;
}

sub servroot {
    my $name = basename($0, '.t');
    return McpSession::Nginx::repo_root() . "/t/servroot-$name";
}

sub new_nginx {
    my (%args) = @_;
    my $n = McpSession::Nginx->new(
        servroot => servroot(),
        port     => server_port(),
        %file_settings,
        %args,
    );
    $ENV{TEST_NGINX_SERVROOT} = $n->servroot;
    $ENV{TEST_NGINX_HTML_DIR} = $n->servroot . '/html';
    return $n;
}

# Plain-Perl API: start_nginx(http_config => ..., config => ..., workers => 2)
sub start_nginx {
    my (%args) = @_;
    my $n = new_nginx(%args);
    $n->start;
    $n->{started_by_api} = 1;
    return $n;
}

sub open_stream {
    my ($n, $method, $uri, %opt) = @_;
    return McpSession::Stream->open($n->port, McpSession::Http::build_request($method, $uri, %opt));
}

# ------------------------------------------------------------ block runner

sub data_section {
    open my $fh, '<', $0 or die "cannot read $0: $!\n";
    local $/;
    my $text = <$fh>;
    close $fh;
    $text =~ s/\A.*?^__DATA__\s*\n//ms or die "$0 has no __DATA__ section\n";
    return $text;
}

sub run_tests {
    server_port();
    my $blocks = McpSession::Blocks::parse(data_section());
    my @only = grep { McpSession::Blocks::has($_, 'ONLY') } @$blocks;
    $blocks = \@only if @only;
    for my $block (@$blocks) {
        next if McpSession::Blocks::has($block, 'SKIP');
        run_block($block);
    }
    done_testing();
}

sub as_list {
    my ($value, $count) = @_;
    return [] unless defined $value;
    return $value if ref $value eq 'ARRAY';
    return [ ($value) x $count ];
}

# Each request of a block: raw bytes or [method, uri, body] plus headers.
sub block_requests {
    my ($block) = @_;
    if (McpSession::Blocks::has($block, 'raw_request')) {
        my $raw = McpSession::Blocks::value($block, 'raw_request');
        return [ map { { raw => $_ } } (ref $raw ? @$raw : ($raw)) ];
    }
    my $requests = McpSession::Blocks::value($block, 'request');
    return [] unless defined $requests;
    $requests = [$requests] unless ref $requests;
    my $headers = McpSession::Blocks::value($block, 'more_headers');
    my @per_request = ref $headers ? @$headers : ((defined $headers ? $headers : '') x @$requests);
    my @out;
    for my $i (0 .. $#$requests) {
        my ($line, $body) = split /\n/, $requests->[$i], 2;
        $line =~ s/^\s+|\s+$//g;
        my ($method, $uri) = split /\s+/, $line;
        $body = undef if defined $body && $body eq '' && $method =~ /^(GET|HEAD|DELETE)$/;
        my @pairs;
        for my $h (split /\n/, $per_request[$i] // '') {
            next unless $h =~ /^\s*([^:\s]+)\s*:\s?(.*)$/;
            push @pairs, $1, $2;
        }
        push @out, { method => $method, uri => $uri, body => $body, headers => \@pairs };
    }
    return \@out;
}

sub check_headers {
    my ($name, $res, $spec, $like) = @_;
    for my $line (split /\n/, $spec) {
        next unless $line =~ /\S/;
        if ($line =~ /^\s*!\s*(\S+)/) {
            ok(!exists $res->{headers}{ lc $1 }, "$name - header $1 absent");
            next;
        }
        my ($h, $v) = $line =~ /^\s*([^:]+?)\s*:\s?(.*?)\s*$/ or next;
        my $got = $res->{headers}{ lc $h }[0];
        if ($like) {
            like($got // '', qr/$v/, "$name - header $h like");
        } else {
            is($got, $v, "$name - header $h");
        }
    }
}

sub log_patterns {
    my ($block, $section) = @_;
    my $value = McpSession::Blocks::value($block, $section);
    return () unless defined $value;
    return @$value if ref $value eq 'ARRAY';
    return ($value) if ref $value eq 'Regexp';
    return grep { /\S/ } split /\n/, $value;
}

sub log_matches {
    my ($text, $pattern) = @_;
    return ref $pattern eq 'Regexp' ? $text =~ $pattern : index($text, $pattern) >= 0;
}

sub check_logs {
    my ($name, $block, $read_log, $timeout) = @_;
    my @expected = log_patterns($block, 'error_log');
    my $deadline = time + $timeout;
    for my $pattern (@expected) {
        my $found = poll_until($deadline - time, sub { log_matches($read_log->(), $pattern) });
        ok($found, "$name - error log has: $pattern");
    }
    my $log = $read_log->();
    for my $pattern (log_patterns($block, 'no_error_log')) {
        ok(!log_matches($log, $pattern), "$name - error log lacks: $pattern");
    }
    return @expected;
}

sub run_must_die {
    my ($name, $block, $n) = @_;
    my ($code, $output) = $n->check_config;
    isnt($code, 0, "$name - nginx -t fails");
    check_logs($name, $block, sub { $output }, 0);
}

sub run_block {
    my ($block) = @_;
    my $name = $block->{title};
    my $n = new_nginx(
        main_config => McpSession::Blocks::value($block, 'main_config'),
        http_config => McpSession::Blocks::value($block, 'http_config'),
        config      => McpSession::Blocks::value($block, 'config'),
    );
    if (McpSession::Blocks::has($block, 'must_die')) {
        run_must_die($name, $block, $n);
        return;
    }

    my $ok = eval { $n->start; 1 };
    if (!$ok) {
        fail("$name - nginx starts: $@");
        $n->stop;
        return;
    }
    my $timeout = McpSession::Blocks::value($block, 'timeout') // 10;
    my $requests = block_requests($block);
    my $count = @$requests;
    my $codes = as_list(McpSession::Blocks::value($block, 'error_code'), $count);
    my $bodies = McpSession::Blocks::value($block, 'response_body');
    my $body_likes = McpSession::Blocks::value($block, 'response_body_like');
    my $headers = McpSession::Blocks::value($block, 'response_headers');
    my $header_likes = McpSession::Blocks::value($block, 'response_headers_like');

    for my $i (0 .. $count - 1) {
        my $req = $requests->[$i];
        my $label = $count > 1 ? "$name (request " . ($i + 1) . ')' : $name;
        my $res = eval {
            $req->{raw}
                ? $n->raw_request($req->{raw}, $timeout)
                : $n->request($req->{method}, $req->{uri}, headers => $req->{headers}, body => $req->{body},
                              timeout => $timeout);
        };
        if (!$res) { fail("$label - request: $@"); next }
        my $last = $i == $count - 1;
        is($res->{status}, $codes->[$i], "$label - status code") if defined $codes->[$i];
        if (defined $bodies && (ref $bodies || $last)) {
            is($res->{body}, ref $bodies ? $bodies->[$i] : $bodies, "$label - response body")
                if !ref $bodies || defined $bodies->[$i];
        }
        if (defined $body_likes && (ref $body_likes || $last)) {
            my $re = ref $body_likes eq 'ARRAY' ? $body_likes->[$i] : $body_likes;
            like($res->{body}, ref $re ? $re : qr/$re/s, "$label - response body like") if defined $re;
        }
        for ([$headers, 0], [$header_likes, 1]) {
            my ($spec, $like) = @$_;
            next unless defined $spec && (ref $spec || $last);
            my $one = ref $spec ? $spec->[$i] : $spec;
            check_headers($label, $res, $one, $like) if defined $one;
        }
    }

    if (defined(my $wait = McpSession::Blocks::value($block, 'wait_for_log'))) {
        $wait =~ s/\s+\z//;
        ok($n->wait_for_log(ref $wait ? $wait : qr/$wait/, $timeout), "$name - error log reaches: $wait");
    }
    my @expected = check_logs($name, $block, sub { $n->error_log }, $timeout);
    # Scanned after the stop, so the workers' shutdown is covered too.
    $n->stop;
    my $bad = join "\n", grep { /\[(alert|crit|emerg)\]|exited on signal/ } split /\n/, $n->error_log;
    my $allowed = grep { log_matches($bad, $_) } @expected;
    ok($bad eq '' || $allowed, "$name - no alert/crit/emerg/signal in the error log") or diag($bad);
}

1;
