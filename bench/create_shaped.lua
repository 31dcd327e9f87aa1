-- wrk: one new session per request, its id in the shape args[1] names
-- (uuid, hex, opaque16, opaque32, opaque40, long600), so the zone's bytes per
-- session can be read off per id shape (bench/id_memory.sh).
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

local counter = 0
local shape = "uuid"
function init(args)
    shape = args[1] or "uuid"
end

local function id_for(n)
    local mixed = tid * 1000000000 + n
    if shape == "uuid" then
        return string.format("0190a1b2-c3d4-7e5f-8a9b-%012x", mixed)
    elseif shape == "hex" then
        return string.format("%016x%016x", tid, n)
    elseif shape == "opaque16" then
        return string.format("s-%014d", mixed)
    elseif shape == "opaque32" then
        return string.format("session-%024d", mixed)
    elseif shape == "opaque40" then
        return string.format("session-%032d", mixed)
    end
    return string.format("eyJ%s.%020d", string.rep("a", 577), mixed)
end

function request()
    counter = counter + 1
    return wrk.format("POST", wrk.path .. "?sid=" .. id_for(counter), nil, "{}")
end
