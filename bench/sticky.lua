-- wrk: a JSON-RPC POST with a live session, as validate.lua, but each
-- request names the next of args[1] (300) sessions args[2]1..N (s-), so
-- requests through a sticky upstream go to every server the sessions
-- were pinned to. Both sides of the row run this same script.
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
local ids = {}
local headers = {}
local counter = 0
function init(args)
    local n = tonumber(args[1]) or 300
    local prefix = args[2] or "s-"
    for i = 1, n do ids[i] = prefix .. i end
    headers["Content-Type"] = "application/json"
    headers["Accept"] = "application/json, text/event-stream"
    counter = math.random(n)
end

function request()
    counter = counter % #ids + 1
    headers["Mcp-Session-Id"] = ids[counter]
    return wrk.format("POST", nil, headers, body)
end
