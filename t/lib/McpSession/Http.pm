package McpSession::Http;
# Raw HTTP/1.1 over a socket, so tests control every byte they send
# (duplicate headers, missing headers, pipelining) and see every byte back.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

our @EXPORT_OK = qw(build_request send_raw parse_response);
use Exporter 'import';

# headers: arrayref of [Name => value, ...] pairs, kept in order, repeats allowed.
sub build_request {
    my ($method, $uri, %opt) = @_;
    my @headers = @{ $opt{headers} // [] };
    my %given;
    for (my $i = 0; $i < @headers; $i += 2) { $given{ lc $headers[$i] } = 1 }
    my $text = "$method $uri HTTP/1.1\r\n";
    $text .= "Host: localhost\r\n" unless $given{host};
    for (my $i = 0; $i < @headers; $i += 2) { $text .= "$headers[$i]: $headers[$i + 1]\r\n" }
    $text .= "Connection: close\r\n" unless $given{connection};
    if (defined $opt{body} && !$given{'content-length'} && !$given{'transfer-encoding'}) {
        $text .= 'Content-Length: ' . length($opt{body}) . "\r\n";
    }
    $text .= "\r\n";
    $text .= $opt{body} if defined $opt{body};
    return $text;
}

sub connect_to {
    my ($port, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 2);
        return $sock if $sock;
        die "cannot connect to 127.0.0.1:$port: $!\n" if time >= $deadline;
        select(undef, undef, undef, 0.02);
    }
}

# Sends bytes, reads until the server closes (or the deadline), parses.
sub send_raw {
    my ($port, $bytes, $timeout) = @_;
    $timeout //= 10;
    my $sock = connect_to($port, $timeout);
    binmode $sock;
    $sock->autoflush(1);
    print {$sock} $bytes;
    my $raw = read_until_closed($sock, time + $timeout);
    close $sock;
    return parse_response($raw);
}

sub read_until_closed {
    my ($sock, $deadline) = @_;
    my $sel = IO::Select->new($sock);
    my $raw = '';
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0;
        last unless $sel->can_read($left);
        my $n = sysread($sock, my $chunk, 65536);
        last if !$n;
        $raw .= $chunk;
    }
    return $raw;
}

sub decode_chunked {
    my ($body) = @_;
    my $out = '';
    while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $size = hex $1;
        last if $size == 0;
        $out .= substr($body, 0, $size, '');
        $body =~ s/^\r\n//;
    }
    return $out;
}

# Returns {status, headers => {lc name => [values]}, body, raw}. Only the
# first response of a pipelined exchange is parsed into fields.
sub parse_response {
    my ($raw) = @_;
    my %res = (status => 0, headers => {}, body => '', raw => $raw);
    my $split = index($raw, "\r\n\r\n");
    return \%res if $split < 0;
    my ($head, $rest) = (substr($raw, 0, $split), substr($raw, $split + 4));
    my @lines = split /\r\n/, $head;
    my $status_line = shift @lines;
    ($res{status}) = $status_line =~ m{^HTTP/\d\.\d (\d{3})};
    $res{status} //= 0;
    for my $line (@lines) {
        my ($name, $value) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{ $res{headers}{ lc $name } }, $value;
    }
    my $te = $res{headers}{'transfer-encoding'}[0] // '';
    if ($te =~ /chunked/i) {
        $res{body} = decode_chunked($rest);
    } elsif (defined(my $len = $res{headers}{'content-length'}[0])) {
        $res{body} = substr($rest, 0, $len);
    } else {
        $res{body} = $rest;
    }
    return \%res;
}

1;
