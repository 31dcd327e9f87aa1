# A full zone whose sessions were all named in random order (so the LRU
# order does not follow the slab's pages): one large publish needs whole
# free pages, which evicting small sessions seldom frees. The event never
# costs another live session its place: it takes expired memory or its own
# session's oldest events, or it is answered 503 and counted. A new session
# in the full zone still gets in, at the cost of a bounded few idle ones.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;
use List::Util qw(shuffle);

my $n = start_nginx(
    workers     => 2,
    log_level   => 'notice',
    http_config => "mcp_session_zone zone=mcp:1m;\nmcp_session_zone zone=small:256k;",
    config      => <<'CONF');
location /mcp {
    mcp_session zone=mcp;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "backend\n"; }
location = /publish { mcp_session_publish zone=mcp; mcp_session_event_max_size 64k; }
location = /status { mcp_session_status zone=mcp; }
location /small { mcp_session zone=small; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location = /publish-small { mcp_session_publish zone=small; mcp_session_event_max_size 64k; }
location = /status-small { mcp_session_status zone=small; }
CONF

sub status { return decode_json($n->request('GET', '/status')->{body}) }
sub create { $n->request('POST', "/mcp?sid=$_[0]", body => '{}')->{status} }
sub use_session { $n->request('POST', '/mcp', headers => ['Mcp-Session-Id' => $_[0]], body => '{}')->{status} }
sub publish { $n->request('POST', '/publish', headers => ['Mcp-Session-Id' => $_[0]], body => $_[1])->{status} }
# 100-byte ids: a record takes a 256-byte chunk, about 3 900 fit in 1 MB.
sub sid { sprintf('s-%098d', $_[0]) }

# Fill the zone until it evicts.
my $made = 0;
until ($made % 100 == 0 && $made > 0 && status()->{counters}{evicted} > 0) {
    die "create: not 200" if create(sid(++$made)) != 200;
    die 'the zone never filled' if $made > 20000;
}
# Every live session named once, in random order.
my @live;
for my $i (shuffle(1 .. $made)) {
    push @live, sid($i) if use_session(sid($i)) == 200;
}
my $before = status();
cmp_ok(scalar(@live), '>', 3000, scalar(@live) . " live sessions, all established, in a full zone");
is($before->{sessions}, scalar(@live), 'the status counts them');

# One 60 KB message for one of them.
my $target = $live[int(@live / 2)];
my $big = '{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"' . ('x' x 61000) . '"}}';
my $code = publish($target, $big);
my $after = status();
my $evicted = $after->{counters}{evicted} - $before->{counters}{evicted};
ok($code == 202 || $code == 503, "the big publish is answered 202 or 503 (got $code)");
is($evicted, 0, "no live session was evicted for another session's event (evicted: $evicted)");
cmp_ok($after->{sessions}, '>=', $before->{sessions}, 'every session is still there');
is($after->{counters}{publish_no_room} - $before->{counters}{publish_no_room}, $code == 503 ? 1 : 0,
   'a 503 is counted in publish_no_room');
like($n->request('GET', '/status?format=prometheus')->{body} // '', qr/^mcp_session_publish_no_room_total\{zone="mcp"\} \d+$/m,
     'publish_no_room is exposed to Prometheus');
is(use_session($target), 200, 'the target session is valid');
is(use_session($live[0]), 200, 'the least recently used session is still valid');

# Many large publishes to one session: its own oldest events make room,
# no other session pays.
my %codes;
$codes{ publish($target, $big) }++ for 1 .. 10;
my $later = status();
is(scalar(grep { $_ != 202 && $_ != 503 } keys %codes), 0,
   'every publish answered 202 or 503 (' . join(', ', map { "$_ x$codes{$_}" } sort keys %codes) . ')');
is($later->{counters}{evicted}, $after->{counters}{evicted}, 'ten more big publishes evicted nobody');
is($later->{counters}{publish_no_room} - $after->{counters}{publish_no_room}, $codes{503} // 0,
   'every 503 counted');

# Ordinary session creation in the full zone still works, evicting a
# bounded few idle sessions per new one.
my ($errors, $worst) = (0, 0);
for my $i (1 .. 50) {
    my $was = status()->{counters}{evicted};
    my $sid = sid(100000 + $i);
    $errors++ if create($sid) != 200 || use_session($sid) != 200;
    my $cost = status()->{counters}{evicted} - $was;
    $worst = $cost if $cost > $worst;
}
is($errors, 0, '50 new sessions in the full zone are stored and valid');
cmp_ok($worst, '<=', 16, "one new session evicted at most 16 (worst: $worst)");
cmp_ok(status()->{counters}{evicted}, '>', $later->{counters}{evicted}, 'idle sessions made room for them');

# A small zone, two sessions: one session's big events make room by
# dropping its own oldest ones, never by evicting the other session.
is($n->request('POST', "/small?sid=$_", body => '{}')->{status}, 200, "small zone: $_ created") for qw(busy quiet);
is($n->request('POST', '/small', headers => ['Mcp-Session-Id' => 'busy'], body => '{}')->{status}, 200, 'small zone: busy is in use');
my $event = '{"jsonrpc":"2.0","method":"m","params":{"data":"' . ('y' x 20000) . '"}}';
my %small;
$small{ $n->request('POST', '/publish-small', headers => ['Mcp-Session-Id' => 'busy'], body => $event)->{status} }++ for 1 .. 20;
is($small{202} // 0, 20, 'small zone: twenty 20 KB events (more than the zone holds) for one session, all accepted (' . join(', ', map { "$_ x$small{$_}" } sort keys %small) . ')');
my $small_status = decode_json($n->request('GET', '/status-small')->{body});
is($small_status->{counters}{evicted}, 0, 'small zone: nobody was evicted');
cmp_ok($small_status->{counters}{events_published}, "==", 20, "small zone: all twenty are counted");
is($n->request('POST', '/small', headers => ['Mcp-Session-Id' => 'quiet'], body => '{}')->{status}, 200,
   'small zone: the other session, least recently used, is still valid');

unlike($n->error_log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit|emerg)\]/, 'no crash or alert');
$n->stop;
done_testing();
