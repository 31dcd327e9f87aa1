-- wrk: one new session per request (a unique sid the trivial upstream
-- echoes as Mcp-Session-Id), so every request is an initialize exchange.
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

local counter = 0
local label = ""
function init(args)
    label = args[1] or ""
end

function request()
    counter = counter + 1
    return wrk.format("POST", wrk.path .. "?sid=" .. label .. "-" .. tid .. "-" .. counter, nil, "{}")
end
