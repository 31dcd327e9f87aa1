package McpSession::Blocks;
# Parses the Test::Nginx block format:
#   === TEST 1: title
#   --- section            (content on the following lines)
#   --- section: value     (inline value)
#   --- section eval       (content is Perl, evaluated)
use strict;
use warnings;

sub parse {
    my ($text) = @_;
    my (@blocks, $block, $section);
    for my $line (split /^/, $text) {
        if ($line =~ /^===\s*(.*?)\s*$/) {
            $block = { title => $1, sections => {}, order => [] };
            push @blocks, $block;
            $section = undef;
            next;
        }
        next unless $block;
        if ($line =~ /^---\s+(\w+)(?:\s+(eval))?\s*(?::\s*(.*?))?\s*$/) {
            $section = { name => $1, eval => defined $2, text => defined $3 ? $3 : '', inline => defined $3 };
            $block->{sections}{$1} = $section;
            push @{ $block->{order} }, $1;
            $section = undef if $section->{inline};
            next;
        }
        $section->{text} .= $line if $section;
    }
    for my $b (@blocks) {
        for my $s (values %{ $b->{sections} }) {
            next if $s->{inline};
            # Blank lines between blocks are not part of the last section.
            $s->{text} =~ s/\n(?:[ \t]*\n)+\z/\n/;
        }
    }
    return \@blocks;
}

# The value of a section: text, or the result of evaluating it.
sub value {
    my ($block, $name) = @_;
    my $s = $block->{sections}{$name} or return undef;
    return $s->{text} unless $s->{eval};
    my $value = eval "package main; no strict; $s->{text}";
    die "section '$name' of '$block->{title}' failed to evaluate: $@" if $@;
    return $value;
}

sub has { exists $_[0]{sections}{ $_[1] } }

1;
