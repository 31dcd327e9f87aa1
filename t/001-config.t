# Configuration mistakes are caught by `nginx -t`, with nginx's wording
# and the file:line of the offending directive.
use lib 't/lib';
use McpSession::TestNginx;

run_tests();

__DATA__

=== TEST 1: a well-formed configuration starts
--- http_config
mcp_session_zone zone=mcp:1m idle_timeout=10m max_lifetime=1h sweep_interval=30s;
--- config
location /mcp { mcp_session zone=mcp; return 200 "ok\n"; }
--- request
GET /mcp
--- error_code: 200
--- response_body
ok

=== TEST 2: mcp_session names a zone nobody declared
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session zone=nope; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: unknown mcp_session zone "nope" \(declare it with mcp_session_zone\) in \S+nginx\.conf:\d+/]

=== TEST 3: size that nginx cannot parse
--- http_config
mcp_session_zone zone=mcp:lots;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid zone size "zone=mcp:lots" in \S+nginx\.conf:\d+/]

=== TEST 4: zone without a size
--- http_config
mcp_session_zone zone=mcp;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid zone size "zone=mcp" in \S+nginx\.conf:\d+/]

=== TEST 5: zone too small for the slab allocator
--- http_config
mcp_session_zone zone=mcp:4k;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: zone "zone=mcp:4k" is too small in \S+nginx\.conf:\d+/]

=== TEST 6: the same zone name twice
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_zone zone=mcp:1m;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: duplicate zone "mcp" in \S+nginx\.conf:\d+/]

=== TEST 7: zone= missing
--- http_config
mcp_session_zone idle_timeout=10m;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "mcp_session_zone" must have "zone" parameter in \S+nginx\.conf:\d+/]

=== TEST 8: unknown parameter
--- http_config
mcp_session_zone zone=mcp:1m idle=10m;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid parameter "idle=10m" in \S+nginx\.conf:\d+/]

=== TEST 9: timeouts use nginx's time syntax and must be positive
--- http_config
mcp_session_zone zone=mcp:1m idle_timeout=soon;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid idle_timeout "idle_timeout=soon" in \S+nginx\.conf:\d+/]

=== TEST 10: zero lifetime refused
--- http_config
mcp_session_zone zone=mcp:1m max_lifetime=0;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid max_lifetime "max_lifetime=0" in \S+nginx\.conf:\d+/]

=== TEST 11: mcp_session needs zone= or off
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session mcp; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid parameter "mcp", expected "zone=NAME" or "off" in \S+nginx\.conf:\d+/]

=== TEST 12: mcp_session twice in one location
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session zone=mcp; mcp_session off; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "mcp_session" directive is duplicate in \S+nginx\.conf:\d+/]

=== TEST 13: mcp_session_zone belongs in http
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session_zone zone=other:1m; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "mcp_session_zone" directive is not allowed here in \S+nginx\.conf:\d+/]

=== TEST 14: the zone name is taken by another module's zone
--- http_config
limit_req_zone $binary_remote_addr zone=shared:1m rate=1r/s;
mcp_session_zone zone=shared:1m;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: the shared memory zone "shared" is already declared for a different use in \S+nginx\.conf:\d+/]

=== TEST 15: a zone may be declared after the location that uses it
--- http_config
server { listen 127.0.0.1:$TEST_NGINX_SERVER_PORT; server_name early.test; location /early { mcp_session zone=late; } }
mcp_session_zone zone=late:1m;
--- config
location /t { return 200 "started\n"; }
--- request
GET /t
--- response_body
started

=== TEST 16: buffer must be 1 to 65536 events
--- http_config
mcp_session_zone zone=mcp:1m buffer=0;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid buffer "buffer=0", expected 1 to 65536 events in \S+nginx\.conf:\d+/]

=== TEST 17: heartbeat takes a time or off
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session zone=mcp; mcp_session_heartbeat often; proxy_pass http://127.0.0.1:1; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid heartbeat interval "often" in \S+nginx\.conf:\d+/]

=== TEST 18: publish endpoint names an undeclared zone
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location = /publish { mcp_session_publish zone=elsewhere; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: unknown mcp_session zone "elsewhere" \(declare it with mcp_session_zone\) in \S+nginx\.conf:\d+/]

=== TEST 19: publish endpoint needs zone=
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location = /publish { mcp_session_publish mcp; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid parameter "mcp", expected "zone=NAME" in \S+nginx\.conf:\d+/]

=== TEST 20: stream directives accepted together
--- http_config
mcp_session_zone zone=mcp:1m buffer=1024;
--- config
location /mcp { mcp_session zone=mcp; mcp_session_stream on; mcp_session_heartbeat off; mcp_session_event_max_size 8k; proxy_pass http://127.0.0.1:1; }
location = /publish { mcp_session_publish zone=mcp; }
location /t { return 200 "started\n"; }
--- request
GET /t
--- response_body
started

=== TEST 21: a heartbeat not shorter than idle_timeout could let a streaming session idle out
--- http_config
mcp_session_zone zone=mcp:1m idle_timeout=10s;
--- config
location /mcp { mcp_session zone=mcp; mcp_session_stream on; mcp_session_heartbeat 10s; proxy_pass http://127.0.0.1:1; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: mcp_session_heartbeat 10000ms is not shorter than idle_timeout of mcp_session zone "mcp" in \S+nginx\.conf:\d+/]

=== TEST 22: the default 15 s heartbeat against a 10 s idle_timeout is caught too
--- http_config
mcp_session_zone zone=mcp:1m idle_timeout=10s;
--- config
location /mcp { mcp_session zone=mcp; mcp_session_stream on; proxy_pass http://127.0.0.1:1; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: mcp_session_heartbeat 15000ms is not shorter than idle_timeout of mcp_session zone "mcp"/]

=== TEST 23: two zones cannot share a state file
--- http_config
mcp_session_zone zone=a:1m state=/tmp/mcp-shared.state;
mcp_session_zone zone=b:1m state=/tmp/mcp-shared.state;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: state file "\/tmp\/mcp-shared.state" is already used by mcp_session zone "a" in \S+nginx\.conf:\d+/]

=== TEST 24: mcp_session_stream in a location without a zone
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session_stream on; proxy_pass http://127.0.0.1:1; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "mcp_session_stream" is on in location "\/mcp", which has no mcp_session zone/]

=== TEST 25: mcp_session_stream on at server level serves the locations that name a zone
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
mcp_session_stream on;
location /mcp { mcp_session zone=mcp; proxy_pass http://127.0.0.1:1; }
location /t { return 200 "started\n"; }
--- request
GET /t
--- response_body
started

=== TEST 26: mcp_session_tracked_tools names a zone declared after it
--- http_config
mcp_session_tracked_tools zone=mcp get_weather search_docs;
mcp_session_zone zone=mcp:1m;
--- config
location /t { return 200 "started\n"; }
--- request
GET /t
--- response_body
started

=== TEST 27: mcp_session_tracked_tools names an unknown zone
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_tracked_tools zone=nope echo;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: unknown mcp_session zone "nope" \(declare it with mcp_session_zone\) in \S+nginx\.conf:\d+/]

=== TEST 28: mcp_session_tracked_tools without zone=
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_tracked_tools echo add;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid parameter "echo", expected "zone=NAME" in \S+nginx\.conf:\d+/]

=== TEST 29: a tool name that could never be a label
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_tracked_tools zone=mcp echo "café";
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid tool name "caf.+", expected 1 to 64 printable ASCII bytes in \S+nginx\.conf:\d+/]

=== TEST 30: a tool name longer than 64 bytes
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_tracked_tools zone=mcp xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid tool name "x{65}", expected 1 to 64 printable ASCII bytes in \S+nginx\.conf:\d+/]

=== TEST 31: the same tool name twice
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_tracked_tools zone=mcp echo add echo;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: duplicate tool name "echo" in \S+nginx\.conf:\d+/]

=== TEST 32: more tool names than the zone has slots
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_tracked_tools zone=mcp t0 t1 t2 t3 t4 t5 t6 t7 t8 t9 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19 t20 t21 t22 t23 t24 t25 t26 t27 t28 t29 t30 t31 t32;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: too many tracked tools \(33\), at most 32 in \S+nginx\.conf:\d+/]

=== TEST 33: two lists for one zone
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_tracked_tools zone=mcp echo;
mcp_session_tracked_tools zone=mcp add;
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: tracked tools of mcp_session zone "mcp" are already set in \S+nginx\.conf:\d+/]

=== TEST 34: mcp_session_tracked_tools outside http
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /t { mcp_session_tracked_tools zone=mcp echo; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "mcp_session_tracked_tools" directive is not allowed here in \S+nginx\.conf:\d+/]

=== TEST 35: mcp_session_lost_session_400 in all its forms starts
--- http_config
mcp_session_zone zone=mcp:1m;
mcp_session_lost_session_400 off;
--- config
location /a { mcp_session zone=mcp; mcp_session_lost_session_400 default; return 200 "ok\n"; }
location /b { mcp_session zone=mcp; mcp_session_lost_session_400 "context gone" "Session Reset"; return 200; }
location /c { mcp_session zone=mcp; mcp_session_lost_session_400 default "context gone"; return 200; }
location /d { return 200; }
--- request
GET /a
--- error_code: 200
--- response_body
ok

=== TEST 36: mcp_session_lost_session_400 where no session is handled
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /t { mcp_session_lost_session_400 off; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "mcp_session_lost_session_400" is set in location "\/t", which has no mcp_session zone in \S+nginx\.conf:\d+/]

=== TEST 37: mcp_session_lost_session_400 off with phrases
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /t { mcp_session zone=mcp; mcp_session_lost_session_400 off "gone"; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "off" cannot be combined with other values in \S+nginx\.conf:\d+/]

=== TEST 38: mcp_session_lost_session_400 with an empty phrase
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /t { mcp_session zone=mcp; mcp_session_lost_session_400 default ""; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid phrase "", expected 1 to 128 bytes in \S+nginx\.conf:\d+/]

=== TEST 39: mcp_session_lost_session_400 with default after a phrase
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /t { mcp_session zone=mcp; mcp_session_lost_session_400 "gone" default; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "default" must be the first value in \S+nginx\.conf:\d+/]

=== TEST 40: mcp_session_lost_session_400 with more than 8 phrases
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /t { mcp_session zone=mcp; mcp_session_lost_session_400 a b c d e f g h i; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: too many phrases, at most 8 in \S+nginx\.conf:\d+/]

=== TEST 41: mcp_session_lost_session_400 twice in one location
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /t { mcp_session zone=mcp; mcp_session_lost_session_400 off; mcp_session_lost_session_400 default; return 200; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "mcp_session_lost_session_400" directive is duplicate in \S+nginx\.conf:\d+/]
