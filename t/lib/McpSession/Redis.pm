package McpSession::Redis;
# A private redis-server (Debian's package) on a loopback port, started and
# stopped by the test that needs it, and a tiny RESP2 client to look inside.
use strict;
use warnings;
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);
use McpSession::Nginx;

sub server_binary { $ENV{REDIS_SERVER} // '/usr/sbin/redis-server' }

# %args: dir (its working directory, made if missing), port, password.
sub new {
    my ($class, %args) = @_;
    die "dir and port are required\n" unless $args{dir} && $args{port};
    return bless {%args}, $class;
}

sub port     { $_[0]{port} }
sub password { $_[0]{password} }
sub address  { "127.0.0.1:$_[0]{port}" }

sub write_config {
    my ($self) = @_;
    make_path($self->{dir});
    open my $fh, '>', "$self->{dir}/redis.conf" or die "redis.conf: $!\n";
    # No persistence: a restart comes back empty, as the re-seed tests need.
    print {$fh} "port $self->{port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n",
        "save \"\"\nappendonly no\ndir $self->{dir}\nlogfile $self->{dir}/redis.log\n";
    print {$fh} "requirepass $self->{password}\n" if defined $self->{password};
    close $fh;
}

# Starts the server and waits until it answers PING; dies if it does not.
sub start {
    my ($self) = @_;
    $self->write_config;
    my $binary = -x server_binary() ? server_binary() : '/usr/bin/redis-server';
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        exec $binary, "$self->{dir}/redis.conf" or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    my $up = McpSession::Nginx::poll_until(10, sub {
        my $answer = eval { $self->command('PING') };
        return defined $answer && $answer eq 'PONG';
    });
    die "redis-server did not answer on port $self->{port}\n" . $self->log unless $up;
    return $self;
}

sub log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/redis.log" or return '';
    local $/;
    return scalar <$fh> // '';
}

# SIGKILL, as a crash or a lost network would look to nginx.
sub kill_hard {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    my $gone = McpSession::Nginx::poll_until(5, sub { waitpid($pid, WNOHANG) == $pid });
    unless ($gone) { kill 'KILL', $pid; waitpid $pid, 0 }
}

# A restart without persistence: everything stored is gone.
sub restart_empty {
    my ($self) = @_;
    $self->kill_hard;
    return $self->start;
}

sub DESTROY { local ($?, $@); $_[0]->stop }

# One command on a fresh connection; returns the decoded reply (errors as
# "ERR-REPLY: ..." so a test can see them). Authenticates when needed.
sub command {
    my ($self, @args) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port}, Proto => 'tcp', Timeout => 2)
        or die "connect to redis: $!\n";
    my @commands = ([@args]);
    unshift @commands, ['AUTH', $self->{password}] if defined $self->{password} && uc $args[0] ne 'PING';
    print {$sock} join '', map { encode(@$_) } @commands;
    my $reply;
    $reply = decode($sock) for @commands;
    close $sock;
    return $reply;
}

sub encode {
    my (@args) = @_;
    return '*' . scalar(@args) . "\r\n" . join '', map { '$' . length($_) . "\r\n$_\r\n" } @args;
}

sub decode {
    my ($sock) = @_;
    my $line = <$sock>;
    die "redis closed the connection\n" unless defined $line;
    $line =~ s/\r\n\z//;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $type eq '+';
    return "ERR-REPLY: $rest" if $type eq '-';
    return 0 + $rest if $type eq ':';
    if ($type eq '$') {
        return undef if $rest < 0;
        my $data = '';
        while (length($data) < $rest + 2) {
            my $n = read($sock, $data, $rest + 2 - length($data), length($data));
            die "redis: short read\n" unless $n;
        }
        return substr($data, 0, $rest);
    }
    if ($type eq '*') {
        return undef if $rest < 0;
        return [map { decode($sock) } 1 .. $rest];
    }
    die "redis: unexpected reply line [$line]\n";
}

# Keys matching a pattern, sorted.
sub keys_matching {
    my ($self, $pattern) = @_;
    my $keys = $self->command('KEYS', $pattern);
    return [sort @{ $keys // [] }];
}

# A hash as a Perl hash reference.
sub hash {
    my ($self, $key) = @_;
    my %h = @{ $self->command('HGETALL', $key) // [] };
    return \%h;
}

1;
