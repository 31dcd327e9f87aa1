# The front door: Origin allow-list, MCP revisions (modern traffic passes
# untouched), principal and tenant binding, and issue mode, where nginx
# makes the session ids and maps them to the backend's.
use lib 't/lib';
use McpSession::TestNginx;

workers(2);
log_level("info");  # debug logs carry raw headers; the binding test checks ours never do
run_tests();

__DATA__

=== TEST 1: Origin: loopback and the server's own names pass, others get 403 before any session work
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
server_name localhost mcp.example.test;
location /mcp {
    mcp_session zone=mcp;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header X-Backend yes; return 200 "ok\n"; }
--- request eval
["GET /mcp", "GET /mcp", "GET /mcp", "GET /mcp", "GET /mcp", "GET /mcp", "GET /mcp"]
--- more_headers eval
["", "Origin: http://localhost:6274", "Origin: https://MCP.example.test", "Origin: http://[::1]:3000",
 "Origin: https://evil.example", "Origin: null", "Origin: https://evil.example\nMcp-Session-Id: whatever"]
--- error_code eval
[200, 200, 200, 200, 403, 403, 403]
--- response_headers eval
["X-Backend: yes", "X-Backend: yes", "X-Backend: yes", "X-Backend: yes",
 "!X-Backend\nContent-Type: application/json", "!X-Backend", "!X-Backend"]
--- response_body eval
["ok\n", "ok\n", "ok\n", "ok\n",
 q({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Forbidden: Origin not allowed"}}),
 q({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Forbidden: Origin not allowed"}}),
 q({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Forbidden: Origin not allowed"}})]

=== TEST 2: Origin: a configured list replaces the default; any allows all
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    mcp_session_allowed_origins https://app.example.com;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /open { mcp_session zone=mcp; mcp_session_allowed_origins any; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location /backend { return 200 "ok\n"; }
--- request eval
["GET /mcp", "GET /mcp", "GET /mcp", "GET /open"]
--- more_headers eval
["Origin: https://app.example.com", "Origin: http://localhost", "Origin: http://app.example.com", "Origin: https://evil.example"]
--- error_code eval
[200, 403, 403, 200]

=== TEST 3: Origin: configuration errors
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session zone=mcp; mcp_session_allowed_origins app.example.com; proxy_pass http://127.0.0.1:1; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: invalid origin "app.example.com", expected scheme:\/\/host\[:port\] or any in \S+nginx\.conf:\d+/]

=== TEST 4: revisions: session-era versions are checked; bad ones get 400; $mcp_protocol_version
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Version $mcp_protocol_version always;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
--- request eval
["POST /mcp?sid=v1\n{}", "POST /mcp\n{}", "POST /mcp\n{}", "POST /mcp\n{}", "POST /mcp\n{}", "POST /mcp\n{}"]
--- more_headers eval
["", "Mcp-Session-Id: v1\nMCP-Protocol-Version: 2025-06-18", "Mcp-Session-Id: v1\nMCP-Protocol-Version: 1999-01-01",
 "Mcp-Session-Id: v1\nMCP-Protocol-Version: latest", "Mcp-Session-Id: v1", "Mcp-Session-Id: v1\nMCP-Protocol-Version: 2024-11-05"]
--- error_code eval
[200, 200, 400, 400, 200, 200]
--- response_headers eval
["X-Version: 2025-03-26", "X-Version: 2025-06-18\nX-Session-Status: valid", "X-Version: 1999-01-01", "X-Version: latest",
 "X-Version: 2025-03-26", "X-Version: 2024-11-05\nX-Session-Status: valid"]
--- response_body_like eval
[qr/ok/, qr/ok/, qr/"Bad Request: Unsupported protocol version: 1999-01-01"/,
 qr/"Bad Request: MCP-Protocol-Version is not a protocol revision \(expected YYYY-MM-DD\)"/, qr/ok/, qr/ok/]

=== TEST 5: revisions: 2026-07-28 traffic naming no session passes untouched; the header never switches enforcement off
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header X-Backend-Saw "[$http_mcp_session_id]"; add_header Mcp-Session-Id backend-raw; return 200 "modern\n"; }
--- request eval
["POST /mcp\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
 "POST /mcp\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
 "POST /mcp\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
 "POST /mcp\n{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
 "POST /mcp\n{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}",
 "DELETE /mcp",
 "GET /mcp"]
--- more_headers eval
["MCP-Protocol-Version: 2026-07-28\nMcp-Session-Id: stale-from-somewhere",
 "MCP-Protocol-Version: 2026-07-28",
 "",
 "MCP-Protocol-Version: 9999-12-31",
 "MCP-Protocol-Version: 2026-07-28",
 "MCP-Protocol-Version: 2026-07-28\nMcp-Session-Id: backend-raw",
 "MCP-Protocol-Version: 2026-07-28"]
--- error_code eval
[404, 200, 400, 400, 400, 404, 200]
--- response_headers eval
["!X-Backend-Saw\n!Mcp-Session-Id\nX-Session-Status: unknown",
 "X-Backend-Saw: []\n!Mcp-Session-Id\nX-Session-Status: none",
 "!X-Backend-Saw\n!Mcp-Session-Id",
 "!X-Backend-Saw\n!Mcp-Session-Id",
 "!X-Backend-Saw\n!Mcp-Session-Id",
 "!X-Backend-Saw\n!Mcp-Session-Id\nX-Session-Status: unknown",
 "X-Backend-Saw: []\n!Mcp-Session-Id"]
--- response_body_like eval
[qr/"error":"session_expired"/, qr/^modern\n$/, qr/Mcp-Session-Id header is required/, qr/Mcp-Session-Id header is required/,
 qr/Mcp-Session-Id header is required/, qr/"error":"session_expired"/, qr/^modern\n$/]

=== TEST 6: revisions: operators may narrow the session-era list
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    mcp_session_protocol_versions 2025-11-25;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { return 200 "ok\n"; }
--- request eval
["GET /mcp", "GET /mcp"]
--- more_headers eval
["MCP-Protocol-Version: 2025-11-25", "MCP-Protocol-Version: 2025-06-18"]
--- error_code eval
[200, 400]

=== TEST 7: revisions: only session-era revisions can be listed
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session zone=mcp; mcp_session_protocol_versions 2026-07-28; proxy_pass http://127.0.0.1:1; }
--- must_die
--- error_log eval
[qr/\[emerg\] \d+#\d+: "2026-07-28" is not a session-era MCP revision \(2024-11-05 up to, not including, 2026-07-28\) in \S+nginx\.conf:\d+/]

=== TEST 8: binding: with distinct errors on, another principal gets 401, another tenant 409; the owner keeps working
--- http_config
mcp_session_zone zone=mcp:1m;
map $http_authorization $api_user { ~^Bearer\s+(?<user>\w+) $user; default anonymous; }
--- config
location /mcp {
    mcp_session zone=mcp;
    mcp_session_principal $api_user;
    mcp_session_tenant $http_x_tenant;
    mcp_session_distinct_binding_errors on;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; add_header X-Backend yes; return 200 "ok\n"; }
--- request eval
["POST /mcp?sid=bound\n{}", "POST /mcp\n{}", "POST /mcp\n{}", "POST /mcp\n{}", "POST /mcp\n{}"]
--- more_headers eval
["Authorization: Bearer alice\nX-Tenant: acme",
 "Authorization: Bearer mallory\nX-Tenant: acme\nMcp-Session-Id: bound",
 "Authorization: Bearer alice\nX-Tenant: other\nMcp-Session-Id: bound",
 "Authorization: Bearer mallory\nX-Tenant: other\nMcp-Session-Id: bound",
 "Authorization: Bearer alice\nX-Tenant: acme\nMcp-Session-Id: bound"]
--- error_code eval
[200, 401, 409, 401, 200]
--- response_headers eval
["X-Session-Status: new", "!X-Backend", "!X-Backend", "!X-Backend", "X-Session-Status: valid\nX-Backend: yes"]
--- response_body_like eval
[qr/ok/, qr/"Unauthorized: the session belongs to another principal"/, qr/"Conflict: the session belongs to another tenant"/,
 qr/Unauthorized/, qr/ok/]
--- no_error_log
alice
mallory
acme

=== TEST 8b: binding: by default another principal or tenant gets the unknown-id 404 (no existence oracle), logged at warn
--- http_config
mcp_session_zone zone=mcp:1m;
map $http_authorization $api_user { ~^Bearer\s+(?<user>\w+) $user; default anonymous; }
--- config
location /mcp {
    mcp_session zone=mcp;
    mcp_session_principal $api_user;
    mcp_session_tenant $http_x_tenant;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; add_header X-Backend yes; return 200 "ok\n"; }
--- request eval
["POST /mcp?sid=bound\n{}", "POST /mcp\n{}", "POST /mcp\n{}", "POST /mcp\n{}", "POST /mcp\n{}"]
--- more_headers eval
["Authorization: Bearer alice\nX-Tenant: acme",
 "Authorization: Bearer mallory\nX-Tenant: acme\nMcp-Session-Id: bound",
 "Authorization: Bearer alice\nX-Tenant: other\nMcp-Session-Id: bound",
 "Authorization: Bearer mallory\nX-Tenant: other\nMcp-Session-Id: bound",
 "Authorization: Bearer alice\nX-Tenant: acme\nMcp-Session-Id: bound"]
--- error_code eval
[200, 404, 404, 404, 200]
--- response_headers eval
["X-Session-Status: new", "!X-Backend", "!X-Backend", "!X-Backend", "X-Session-Status: valid\nX-Backend: yes"]
--- response_body_like eval
[qr/ok/, qr/^\{"jsonrpc":"2.0","id":null,"error":\{"code":-32001,"message":"Mcp-Session-Id `bound` is unknown or expired/,
 qr/"error":"session_expired"/, qr/"error":"session_expired"/, qr/ok/]
--- error_log
mcp_session zone "mcp": a request presented a session bound to another principal
mcp_session zone "mcp": a request presented a session bound to another tenant
--- no_error_log
alice
mallory
acme

=== TEST 9: issue mode: nginx makes the id, maps it to the backend's both ways
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    add_header X-Session-Status $mcp_session_status always;
    add_header X-Session-Id $mcp_session_id always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend {
    add_header Mcp-Session-Id backend-7;
    add_header X-Backend-Saw "[$http_mcp_session_id] $http_content_length";
    return 200 "ok\n";
}
--- request eval
["POST /mcp\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}"]
--- error_code: 200
--- response_headers_like
Mcp-Session-Id: ^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$
X-Session-Status: ^new$
X-Backend-Saw: ^\[\] 58$

=== TEST 10: issue mode: non-initialize without a session is 400 with the request's id; a body nginx cannot read is refused (no parser differential)
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    mcp_session_mode issue;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header X-Backend yes; return 200 "backend\n"; }
--- request eval
["POST /mcp\n{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"tools/list\"}",
 "POST /mcp\n{\"jsonrpc\":\"2.0\",\"id\":\"req-7\",\"method\":\"tools/call\"}",
 "POST /mcp\n{not json",
 "GET /mcp"]
--- error_code eval
[400, 400, 400, 200]
--- response_body eval
[q({"jsonrpc":"2.0","id":42,"error":{"code":-32000,"message":"Bad Request: Mcp-Session-Id header is required (initialize first)"}}),
 q({"jsonrpc":"2.0","id":"req-7","error":{"code":-32000,"message":"Bad Request: Mcp-Session-Id header is required (initialize first)"}}),
 q({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Parse error: the body is not valid JSON-RPC"}}), "backend\n"]
--- response_headers eval
["!X-Backend", "!X-Backend", "!X-Backend\nX-Session-Status: none", "X-Backend: yes"]

=== TEST 11: revisions: 2024-11-05 passes; a stream GET whose Accept refuses text/event-stream (q=0) gets 406
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    mcp_session_stream on;
    mcp_session_heartbeat off;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
--- request eval
["POST /mcp?sid=acc\n{}", "GET /mcp", "GET /mcp", "POST /mcp\n{}"]
--- more_headers eval
["MCP-Protocol-Version: 2024-11-05", "Mcp-Session-Id: acc\nAccept: text/event-stream;q=0",
 "Mcp-Session-Id: acc\nAccept: */*", "Mcp-Session-Id: acc\nMCP-Protocol-Version: 2024-11-05"]
--- error_code eval
[200, 406, 406, 200]
--- response_body_like eval
[qr/ok/, qr/Not Acceptable: the client must accept text\/event-stream/, qr/Not Acceptable/, qr/ok/]
