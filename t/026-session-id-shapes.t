# What an idle session costs per id shape, and ids of any length a header
# can carry. Canonical UUIDs and even-length lowercase hex ids (uuid4().hex,
# $request_id) are packed into a 128-byte slab chunk; other ids up to 16
# bytes fit it too, longer ones take 256 bytes. Ids over 128 bytes (JWT
# style) are kept as a digest: valid in learn mode, forwarded intact in
# issue mode, and restored from the state file. Two workers share the zones.
use strict;
use warnings;
use lib 't/lib';
use McpSession::TestNginx;
use Test::More;
use JSON::PP;

my $initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}';
my $request = '{"jsonrpc":"2.0","id":2,"method":"tools/list"}';
my @shapes = qw(uuid hex opaque40);

my $zones = join("\n", map { "mcp_session_zone zone=$_:1m;" } @shapes);
my $locations = join("\n", map { <<"LOC" } @shapes);
location /$_ {
    mcp_session zone=$_;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
}
location = /status-$_ { mcp_session_status zone=$_; }
LOC

my $n = start_nginx(
    workers     => 2,
    http_config => "$zones\nmcp_session_zone zone=long:1m state=long.state;\nlarge_client_header_buffers 4 16k;\nproxy_buffer_size 16k;\nproxy_buffers 4 16k;",
    config      => <<"CONF");
$locations
location /long {
    mcp_session zone=long;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
}
location /issue {
    mcp_session zone=long;
    mcp_session_mode issue;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
}
location = /status-long { mcp_session_status zone=long; }
# The backend names new sessions as ?sid= says, and echoes the id it is
# addressed by.
location /backend {
    if (\$http_mcp_session_id = "") { add_header Mcp-Session-Id \$arg_sid; return 200 "ok\\n"; }
    return 200 "\$http_mcp_session_id";
}
CONF

sub status { decode_json($n->request('GET', "/status-$_[0]")->{body}) }

sub learn {
    my ($uri, $sid) = @_;
    return $n->request('POST', "$uri?sid=$sid", body => $initialize)->{status};
}

sub call {
    my ($uri, $sid) = @_;
    return $n->request('POST', $uri, headers => ['Mcp-Session-Id' => $sid], body => $request);
}

# --- Memory per id shape: 1 000 sessions in each zone.
my %make = (
    uuid     => sub { sprintf('0190a1b2-c3d4-7e5f-8a9b-%012x', $_[0]) },
    hex      => sub { sprintf('%032x', $_[0] * 7919) },
    opaque40 => sub { sprintf('session-%032d', $_[0]) },
);
my %per_session;
for my $shape (@shapes) {
    my $empty = status($shape)->{bytes_used};
    my @codes = map { learn("/$shape", $make{$shape}->($_)) } 1 .. 1000;
    is(scalar(grep { $_ == 200 } @codes), 1000, "$shape: 1000 sessions learned");
    my $st = status($shape);
    is($st->{sessions}, 1000, "$shape: the zone holds 1000 sessions");
    $per_session{$shape} = ($st->{bytes_used} - $empty) / 1000;
    note(sprintf('%s ids: %.1f bytes per session', $shape, $per_session{$shape}));
}
cmp_ok($per_session{uuid}, '<=', 132, 'a UUID session takes one 128-byte chunk');
cmp_ok($per_session{hex}, '<=', $per_session{uuid} + 1, 'a 32-digit hex session costs what a UUID one does');
cmp_ok($per_session{opaque40}, '>=', 250, 'a 40-byte opaque id takes a 256-byte chunk');
is(call('/hex', $make{hex}->(5))->{status}, 200, 'a packed hex id validates');
is(call('/hex', uc $make{hex}->(5))->{status}, 404, 'its uppercase spelling is another id');

# --- Long ids (learn mode): 600 and 6 000 bytes.
my $jwt = 'eyJhbGciOiJIUzI1NiJ9.' . ('a' x 600) . '.c2ln';
my $huge = 'eyJ' . ('b' x 6000);
is(learn('/long', $jwt), 200, 'a backend may issue a 600-byte id');
my $res = call('/long', $jwt);
is($res->{status}, 200, 'requests with it are valid');
is($res->{body}, $jwt, 'and the backend receives it intact');
(my $other = $jwt) =~ s/c2ln$/c2lm/;
is(call('/long', $other)->{status}, 404, 'an id differing in its last byte is another (unknown) session');
is(learn('/long', $huge), 200, 'a 6 000-byte id is learned too');
is(call('/long', $huge)->{body}, $huge, 'and validates');

# --- Issue mode: nginx issues its own id; the backend's long one is forwarded.
my $long_backend = 'bk.' . ('z' x 2000);
$res = $n->request('POST', "/issue?sid=$long_backend", body => $initialize);
is($res->{status}, 200, 'issue mode: initialize');
my $issued = $res->{headers}{'mcp-session-id'}[0] // '';
like($issued, qr/^[0-9a-f]{8}-[0-9a-f]{4}-7/, 'the client gets nginx\'s own id');
is(call('/issue', $issued)->{body}, $long_backend, "the backend receives its own 2 000-byte id");

# --- The state file keeps them across a restart.
$n->restart;
is(call('/long', $jwt)->{status}, 200, 'after a restart the 600-byte id is still valid');
is(call('/long', $huge)->{body}, $huge, 'so is the 6 000-byte one');
is(call('/issue', $issued)->{body}, $long_backend, "and the issued session still forwards the backend's id");
is($n->request('DELETE', '/long', headers => ['Mcp-Session-Id' => $jwt])->{status}, 200, 'DELETE ends it');
is(call('/long', $jwt)->{status}, 404, 'then it is unknown');

unlike($n->error_log, qr/AddressSanitizer|runtime error|exited on signal|\[(alert|crit|emerg)\]|is not tracked/, 'no crash, alert or untracked id');
$n->stop;
done_testing();
