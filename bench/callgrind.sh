#!/usr/bin/env bash
# bench/callgrind.sh: instructions per request, counted by callgrind in a
# single nginx process (repeatable, unlike req/s on a shared machine):
# validation (a JSON-RPC POST naming a live session) for ours, plain
# proxy_pass and the lua_shared_dict recipe; session creation for ours and
# plain; a tools/call answered with 64 SSE events of 1 KB, recorded (stream
# on) and plainly proxied (buffered and unbuffered); and the instructions ours runs between taking
# and dropping the zone lock per request. Needs valgrind, wrk and the module built
# (./build.sh build); the Lua side needs libnginx-mod-http-lua.
#   bench/callgrind.sh [SECONDS]     (3 s of requests per scenario)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/bench/callgrind"
MODULE="${MODULE:-$ROOT/build/ngx_mcp_session_module.so}"
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
PORT="${BENCH_PORT:-18450}"
UPSTREAM_PORT=$((PORT + 1))
SECONDS_EACH="${1:-3}"
SSE="$ROOT/build/bench/sse_bench"

rm -rf "$OUT" && mkdir -p "$OUT/conf" "$OUT/logs" "$OUT/tmp"
bash "$ROOT/bench/sse64.sh" "$OUT/sse64.txt"
[[ -x $SSE ]] || g++ -std=c++17 -O2 -pthread "$ROOT/bench/sse_bench.cpp" -o "$SSE"
cat >"$OUT/conf/nginx.conf" <<CONF
load_module $MODULE;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process off;
pid $OUT/logs/nginx.pid;
error_log $OUT/logs/error.log warn;
events { worker_connections 1000; }
http {
    access_log off;
    client_body_temp_path $OUT/tmp;
    proxy_temp_path $OUT/tmp;
    keepalive_requests 10000000;
    mcp_session_zone zone=mcp:64m idle_timeout=1h;
    mcp_session_zone zone=rec:256m buffer=64 idle_timeout=1h;  # 1000 rings of 64 recorded events
    lua_shared_dict lua_sessions 16m;
    upstream trivial { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / { add_header Mcp-Session-Id \$arg_sid; return 200 "ok"; }
        location = /sse64 { alias $OUT/sse64.txt; default_type text/event-stream; }
    }
    server {
        listen 127.0.0.1:$PORT;
        location /mcp { mcp_session zone=mcp; proxy_pass http://trivial; proxy_http_version 1.1; proxy_set_header Connection ""; }
        include $ROOT/bench/post_stream_locations.conf;  # /rec, /mcp-sse, /plain-sse, /unbuffered-sse
        location /plain { proxy_pass http://trivial; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location /lua { include $ROOT/bench/lua_recipe.conf; }
    }
}
CONF

# Instrumentation starts off and is switched on around each measurement.
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.out" \
    "$NGINX_BIN" -p "$OUT/" -c "$OUT/conf/nginx.conf" 2>"$OUT/valgrind.log" &
VG=$!
trap 'kill -QUIT $VG 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -s -o /dev/null "127.0.0.1:$PORT/plain" && break; sleep 0.1; done
base="http://127.0.0.1:$PORT"
"$SSE" populate --port "$PORT" --count 1000 --prefix live- >/dev/null
"$SSE" populate --port "$PORT" --count 1000 --prefix live- --path /lua >/dev/null
# Under valgrind a pipelined populate may lose some to its timeout: a
# second pass makes what is missing, and a short count stops the run (a
# 404 is cheap and would make the POST streams look cheap).
for _ in 1 2 3; do
    made=$(curl -s "$base/rec/status" | sed -n 's/.*"sessions":\([0-9]*\).*/\1/p')
    [[ ${made:-0} -ge 1000 ]] && break
    "$SSE" populate --port "$PORT" --count 1000 --prefix live- --path /rec >/dev/null || true
done
[[ ${made:-0} -ge 1000 ]] || { echo "only ${made:-0} of 1000 sessions for the POST streams" >&2; exit 1; }

names=()
measure() {  # NAME WARM(yes|no) wrk arguments...
    local name=$1 warm=$2; shift 2
    [[ $warm == yes ]] && wrk -t1 -c4 -d1s "$@" >/dev/null 2>&1
    callgrind_control -i on "$VG" >/dev/null 2>&1
    local out; out=$(wrk -t1 -c4 -d"${SECONDS_EACH}s" "$@" 2>/dev/null)
    callgrind_control -d "$name" "$VG" >/dev/null 2>&1
    callgrind_control -i off "$VG" >/dev/null 2>&1
    callgrind_control -z "$VG" >/dev/null 2>&1
    names+=("$name $(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')")
}
validate=(-s "$ROOT/bench/validate.lua")
measure warm-up yes "$base/plain" "${validate[@]}"
measure validate-ours yes "$base/mcp" "${validate[@]}"
measure validate-plain yes "$base/plain" "${validate[@]}"
measure validate-lua yes "$base/lua" "${validate[@]}"
# No warm-up for creation: a second pass over the same ids would touch, not create.
measure create-ours no "$base/mcp" -s "$ROOT/bench/create.lua" -- "cg$(date +%s)"
measure create-plain no "$base/plain" -s "$ROOT/bench/create.lua" -- "pp$(date +%s)"  # ids as long as ours
post_stream=(-s "$ROOT/bench/post_stream.lua")
measure sse-ours yes "$base/mcp-sse" "${post_stream[@]}"
measure sse-plain yes "$base/plain-sse" "${post_stream[@]}"
measure sse-unbuffered yes "$base/unbuffered-sse" "${post_stream[@]}"
kill -QUIT "$VG"; wait "$VG" || true
trap - EXIT

total_of() { callgrind_annotate "$1" 2>/dev/null | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,; }
# Inclusive instructions of function $2 in dump $1.
inclusive() {
    callgrind_annotate --threshold=100 --inclusive=yes --auto=no "$1" 2>/dev/null |
        awk -v f="$2" 'index($0, f) && !done { gsub(",", "", $1); v = $1; done = 1 } END { print v + 0 }'
}
echo "| scenario | requests | instructions / request | under the zone lock / request |"
echo "|---|---|---|---|"
i=0
for entry in "${names[@]}"; do
    i=$((i + 1))
    read -r name count <<<"$entry"
    [[ $name == warm-up || -z $count || $count == 0 ]] && continue
    dump="$OUT/cg.out.$i"
    locked="—"
    store_fn=""
    [[ $name == validate-ours ]] && store_fn="session_store::validate("
    [[ $name == create-ours ]] && store_fn="session_store::record("
    if [[ -n $store_fn ]]; then
        # The store call minus taking and dropping the lock (and ringing no doorbell).
        all=$(inclusive "$dump" "$store_fn"); lock=$(inclusive "$dump" "zone_transaction::zone_transaction(")
        unlock=$(inclusive "$dump" "zone_transaction::~zone_transaction(")
        locked=$(( (all - lock - unlock) / count ))
    fi
    echo "| $name | $count | $(( $(total_of "$dump") / count )) | $locked |"
done
