package McpSession::Nodes;
# One nginx node of the redis= suites: 2 workers, info log, started now.
use strict;
use warnings;
use Exporter 'import';
use McpSession::Nginx;

our @EXPORT_OK = qw(start_node);

sub start_node {
    my (%args) = @_;
    my $node = McpSession::Nginx->new(workers => 2, log_level => 'info', %args);
    $node->start;
    $node->{started_by_api} = 1;
    return $node;
}

1;
