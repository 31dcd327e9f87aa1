-- wrk: a tools/call POST naming one of 1000 live sessions (live-1 ..
-- live-1000) at random, so POST streams spread over many sessions as they
-- would from many clients (a session tracks 8 POST streams at once).
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"steps"}}'
function request()
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json, text/event-stream",
        ["Mcp-Session-Id"] = "live-" .. math.random(0, 999),
    }, body)
end
