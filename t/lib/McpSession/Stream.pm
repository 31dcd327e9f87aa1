package McpSession::Stream;
# A response read incrementally (SSE), with deadlines on every read.
use strict;
use warnings;
use IO::Select;
use Time::HiRes qw(time);
use McpSession::Http;

sub open {
    my ($class, $port, $bytes) = @_;
    my $sock = McpSession::Http::connect_to($port, 10);
    binmode $sock;
    $sock->autoflush(1);
    print {$sock} $bytes;
    return bless { sock => $sock, data => '', closed => 0 }, $class;
}

# Reads until the data so far matches $re, the peer closes, or $secs pass.
# Returns everything read so far.
sub read_until {
    my ($self, $re, $secs) = @_;
    my $deadline = time + ($secs // 5);
    my $sel = IO::Select->new($self->{sock});
    while ($self->{data} !~ $re && !$self->{closed}) {
        my $left = $deadline - time;
        last if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread($self->{sock}, my $chunk, 65536);
        if (!$n) { $self->{closed} = 1; last }
        $self->{data} .= $chunk;
    }
    return $self->{data};
}

sub data   { $_[0]{data} }
sub closed { $_[0]{closed} }

sub close {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
}

1;
