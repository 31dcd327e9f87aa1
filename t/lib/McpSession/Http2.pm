package McpSession::Http2;
# HTTP/2 (h2c, prior knowledge) through curl, for the suites that run the
# module's cases over HTTP/2. curl runs without the sanitizer runtime that
# ./build.sh test-asan preloads for nginx: preloaded into curl, it hangs.
#
# Requests that nginx answers itself are best sent without a body: nginx
# ends such a stream with RST_STREAM(NO_ERROR) before the client's DATA,
# which curl 7.88 reports as an error (exit 92), as for a plain `return 404`.
use strict;
use warnings;
use Exporter 'import';

our @EXPORT_OK = qw(h2_request h2_stream_to);

my @curl = ('env', '-u', 'LD_PRELOAD', 'curl', '-s', '--http2-prior-knowledge');

# One exchange: {version, status, headers => {lowercased name => [values]}, body}.
sub h2_request {
    my ($port, $method, $path, $body, @headers) = @_;
    my @cmd = (@curl, '-i', '--max-time', '10', '-X', $method);
    push @cmd, '-H', $_ for @headers;
    push @cmd, '--data-binary', $body if defined $body;
    open my $fh, '-|', @cmd, "http://127.0.0.1:$port$path" or die "curl: $!\n";
    local $/;
    my $raw = <$fh> // '';
    close $fh;
    my ($head, $rest) = split /\r\n\r\n/, $raw, 2;
    my ($status_line, @lines) = split /\r\n/, $head // '';
    my ($version, $status) = ($status_line // '') =~ m{^(HTTP/\S+) (\d+)};
    my %h;
    for (@lines) { my ($k, $v) = /^([^:]+):\s*(.*)$/ or next; push @{ $h{lc $k} }, $v }
    return { version => $version // '', status => $status // 0, headers => \%h, body => $rest // '' };
}

# A GET stream that curl writes, headers included, into $out as it arrives;
# returns curl's pid (its exit code says whether the stream ended cleanly).
sub h2_stream_to {
    my ($port, $path, $out, @headers) = @_;
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        exec(@curl, '-N', '-i', '--max-time', '30', (map { ('-H', $_) } @headers), '-o', $out,
            "http://127.0.0.1:$port$path") or exit 127;
    }
    return $pid;
}

1;
