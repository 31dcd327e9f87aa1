-- wrk: what an MCP client sends once it has a session, a JSON-RPC POST
-- naming it in Mcp-Session-Id (args[1], default live-500). The same
-- request goes to the plain proxy and to the Lua recipe, which ignore or
-- check the header as they do.
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
function init(args)
    wrk.method = "POST"
    wrk.body = body
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Accept"] = "application/json, text/event-stream"
    wrk.headers["Mcp-Session-Id"] = args[1] or "live-500"
end
