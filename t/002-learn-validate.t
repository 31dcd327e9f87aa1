# Learn mode: the backend assigns ids, nginx records them from the
# initialize answer and validates every later request in shared memory.
use lib 't/lib';
use McpSession::TestNginx;

workers(2);
run_tests();

__DATA__

=== TEST 1: learn from the backend, validate, reject an unknown id with the JSON 404
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    add_header X-Session-Id $mcp_session_id always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend {
    add_header Mcp-Session-Id $arg_sid;
    add_header X-Backend-Saw "$request_method $http_mcp_session_id";
    return 200 "backend\n";
}
--- request eval
["POST /mcp?sid=learned-1\n{\"method\":\"initialize\"}",
 "POST /mcp\n{\"method\":\"tools/list\"}",
 "POST /mcp\n{\"method\":\"tools/list\"}"]
--- more_headers eval
["", "Mcp-Session-Id: learned-1", "Mcp-Session-Id: never-issued"]
--- error_code eval
[200, 200, 404]
--- response_headers eval
["X-Session-Status: new\nX-Session-Id: learned-1\nMcp-Session-Id: learned-1",
 "X-Session-Status: valid\nX-Session-Id: learned-1\nX-Backend-Saw: POST learned-1",
 "X-Session-Status: unknown\nContent-Type: application/json\n!X-Backend-Saw"]
--- response_body eval
["backend\n", "backend\n",
 q({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Mcp-Session-Id `never-issued` is unknown or expired; re-initialize via POST without Mcp-Session-Id","data":{"error":"session_expired","status":404,"retry":"re-initialize"}}})]
--- no_error_log
[error]
[warn]

=== TEST 2: a request without Mcp-Session-Id passes untouched (status none)
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { return 200 "no session issued\n"; }
--- request
GET /mcp
--- error_code: 200
--- response_headers
X-Session-Status: none
!Mcp-Session-Id
--- response_body
no session issued

=== TEST 3: the backend's id is learned from an SSE initialize answer too
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    proxy_buffering off;
}
location /backend {
    default_type text/event-stream;
    add_header Mcp-Session-Id $arg_sid;
    return 200 "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
}
--- request eval
["POST /mcp?sid=sse-session\n{}", "POST /mcp\n{}"]
--- more_headers eval
["", "Mcp-Session-Id: sse-session"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-Session-Status: new\nContent-Type: text/event-stream", "X-Session-Status: valid"]

=== TEST 4: an empty or whitespace-only id is unknown (404), never 400
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { return 200 "backend\n"; }
--- raw_request eval
["POST /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id:\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
 "POST /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: \t \r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"]
--- error_code eval
[404, 404]
--- response_headers eval
["X-Session-Status: unknown", "X-Session-Status: unknown"]
--- response_body_like eval
[qr/"Mcp-Session-Id `` is unknown or expired; re-initialize via POST without Mcp-Session-Id"/,
 qr/"Mcp-Session-Id `` is unknown or expired/]

=== TEST 5: surrounding whitespace is not part of the id
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
--- raw_request eval
["GET /mcp?sid=trim-me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
 "GET /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: \ttrim-me \r\nConnection: close\r\n\r\n"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-Session-Status: new", "X-Session-Status: valid"]

=== TEST 6: two Mcp-Session-Id headers are refused with 400, before the backend
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; add_header X-Backend yes; return 200 "ok\n"; }
--- request eval
["GET /mcp?sid=dup-a", "GET /mcp"]
--- more_headers eval
["", "Mcp-Session-Id: dup-a\nMcp-Session-Id: dup-a"]
--- error_code eval
[200, 400]
--- response_headers eval
["X-Backend: yes", "Content-Type: application/json\n!X-Backend"]
--- response_body eval
["ok\n", q({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: more than one Mcp-Session-Id header"}})]

=== TEST 7: hostile ids are escaped and capped in the 404 body
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp { mcp_session zone=mcp; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location /backend { return 200 "backend\n"; }
--- request eval
["GET /mcp", "GET /mcp"]
--- more_headers eval
["Mcp-Session-Id: a\"b\\c<x>", "Mcp-Session-Id: " . ("y" x 4000)]
--- error_code eval
[404, 404]
--- response_body eval
[q({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Mcp-Session-Id `a\"b\\\\c<x>` is unknown or expired; re-initialize via POST without Mcp-Session-Id","data":{"error":"session_expired","status":404,"retry":"re-initialize"}}}),
 q({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Mcp-Session-Id `) . ("y" x 128) . q(...` is unknown or expired; re-initialize via POST without Mcp-Session-Id","data":{"error":"session_expired","status":404,"retry":"re-initialize"}}})]

=== TEST 8: DELETE ends the session once the backend agrees
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
--- request eval
["POST /mcp?sid=to-delete\n{}", "DELETE /mcp", "POST /mcp\n{}"]
--- more_headers eval
["", "Mcp-Session-Id: to-delete", "Mcp-Session-Id: to-delete"]
--- error_code eval
[200, 200, 404]
--- response_headers eval
["X-Session-Status: new", "X-Session-Status: valid", "X-Session-Status: unknown"]

=== TEST 9: a DELETE the backend refuses leaves the session alive
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend {
    if ($request_method = DELETE) { return 405; }
    add_header Mcp-Session-Id $arg_sid;
    return 200 "ok\n";
}
--- request eval
["POST /mcp?sid=kept\n{}", "DELETE /mcp", "POST /mcp\n{}"]
--- more_headers eval
["", "Mcp-Session-Id: kept", "Mcp-Session-Id: kept"]
--- error_code eval
[200, 405, 200]

=== TEST 10: a backend 404 ends a live session only when it is a JSON-RPC error, not for other paths; the client gets nginx's 404
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend {
    default_type application/json;
    if ($arg_forget) { return 404 '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}'; }
    add_header Mcp-Session-Id $arg_sid;
    return 200 "ok\n";
}
location /backend/notfound { default_type text/html; return 404 "<h1>Cannot POST /mcp/notfound</h1>\n"; }
location /backend/jsonnotfound { default_type application/json; return 404 '{"detail":"no such resource"}'; }
--- request eval
["POST /mcp?sid=forgotten\n{}", "POST /mcp/notfound\n{}", "POST /mcp/jsonnotfound\n{}", "POST /mcp\n{}",
 "POST /mcp?forget=1\n{}", "POST /mcp\n{}"]
--- more_headers eval
["", "Mcp-Session-Id: forgotten", "Mcp-Session-Id: forgotten", "Mcp-Session-Id: forgotten",
 "Mcp-Session-Id: forgotten", "Mcp-Session-Id: forgotten"]
--- error_code eval
[200, 404, 404, 200, 404, 404]
--- response_body_like eval
[qr/ok/, qr/Cannot POST/, qr/no such resource/, qr/ok/, qr/"error":"session_expired"/, qr/"error":"session_expired"/]
--- response_headers eval
["X-Session-Status: new", "X-Session-Status: valid", "X-Session-Status: valid", "X-Session-Status: valid",
 "X-Session-Status: valid", "X-Session-Status: unknown"]

=== TEST 11: an initialize the backend rejects records nothing
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid always; return 500 "failed\n"; }
--- request eval
["POST /mcp?sid=half-made\n{}", "POST /mcp\n{}"]
--- more_headers eval
["", "Mcp-Session-Id: half-made"]
--- error_code eval
[500, 404]
--- response_headers eval
["X-Session-Status: none", "X-Session-Status: unknown"]

=== TEST 12: a backend id outside the rules is not tracked, logged once
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id "has spaces in it"; return 200 "ok\n"; }
--- request eval
["POST /mcp\n{}", "POST /mcp\n{}"]
--- more_headers eval
["", "Mcp-Session-Id: has spaces in it"]
--- error_code eval
[200, 404]
--- response_headers eval
["X-Session-Status: none", "X-Session-Status: unknown"]
--- error_log
backend session id of 16 bytes is not tracked (ids must be 1-8192 visible ASCII bytes)

=== TEST 13: mcp_session off in a nested location; inherited from server
--- http_config
mcp_session_zone zone=mcp:1m;
--- config
mcp_session zone=mcp;
location /mcp { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location /mcp/health { mcp_session off; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend; }
location /backend { mcp_session off; return 200 "open\n"; }
--- request eval
["GET /mcp", "GET /mcp/health"]
--- more_headers
Mcp-Session-Id: nobody
--- error_code eval
[404, 200]

=== TEST 14: the longest storable id works, one byte more cannot be a session
--- http_config
mcp_session_zone zone=mcp:1m;
large_client_header_buffers 4 32k;
proxy_buffer_size 32k;
proxy_buffers 4 32k;
--- config
location /mcp {
    mcp_session zone=mcp;
    add_header X-Session-Status $mcp_session_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
}
location /backend { add_header Mcp-Session-Id $arg_sid; return 200 "ok\n"; }
--- request eval
["POST /mcp?sid=" . ("L" x 8192) . "\n{}", "POST /mcp\n{}", "POST /mcp?sid=" . ("M" x 8193) . "\n{}", "POST /mcp\n{}", "POST /mcp?sid=" . ("N" x 129) . "\n{}", "POST /mcp\n{}"]
--- more_headers eval
["", "Mcp-Session-Id: " . ("L" x 8192), "", "Mcp-Session-Id: " . ("M" x 8193), "", "Mcp-Session-Id: " . ("N" x 129)]
--- error_code eval
[200, 200, 200, 404, 200, 200]
--- response_headers eval
["X-Session-Status: new", "X-Session-Status: valid", "X-Session-Status: none", "X-Session-Status: unknown", "X-Session-Status: new", "X-Session-Status: valid"]
--- error_log
backend session id of 8193 bytes is not tracked
