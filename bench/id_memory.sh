#!/usr/bin/env bash
# Shared memory per idle session by id shape: SESSIONS sessions (default
# 100 000) learned into one zone per shape, then bytes used / sessions
# from the zone's status. Writes build/bench/id_memory.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/bench/id-memory"
MODULE="$ROOT/build/ngx_mcp_session_module.so"
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
PORT="${BENCH_PORT:-18700}"
SESSIONS="${SESSIONS:-100000}"
SHAPES=(uuid hex opaque16 opaque32 opaque40 long600)

mkdir -p "$OUT/conf" "$OUT/logs" "$OUT/tmp"
user_line=""; [[ $(id -u) -eq 0 ]] && user_line="user root;"
{
    echo "load_module $MODULE; $user_line worker_processes 2; pid $OUT/logs/nginx.pid; error_log $OUT/logs/error.log warn;"
    echo "events { worker_connections 1024; }"
    echo "http { access_log off; client_body_temp_path $OUT/tmp; proxy_temp_path $OUT/tmp; proxy_buffer_size 8k;"
    for s in "${SHAPES[@]}"; do echo "  mcp_session_zone zone=$s:64m idle_timeout=1h;"; done
    echo "  server { listen 127.0.0.1:$((PORT + 1)); location / { add_header Mcp-Session-Id \$arg_sid; return 200 ok; } }"
    echo "  server { listen 127.0.0.1:$PORT;"
    for s in "${SHAPES[@]}"; do
        echo "    location /$s { mcp_session zone=$s; proxy_pass http://127.0.0.1:$((PORT + 1)); }"
        echo "    location = /status/$s { mcp_session_status zone=$s; }"
    done
    echo "  }"
    echo "}"
} >"$OUT/conf/nginx.conf"

"$NGINX_BIN" -p "$OUT/" -c "$OUT/conf/nginx.conf"
trap 'kill -QUIT "$(cat "$OUT/logs/nginx.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
status() { curl -s "http://127.0.0.1:$PORT/status/$1"; }
{
    echo "| id shape (example) | sessions | bytes per idle session |"
    echo "|---|---|---|"
    for s in "${SHAPES[@]}"; do
        empty=$(status "$s" | field bytes_used)
        # Two threads, one connection each: wrk stops after SESSIONS requests in all.
        wrk -t2 -c2 -d600s -s "$ROOT/bench/create_shaped.lua" "http://127.0.0.1:$PORT/$s" -- "$s" \
            >/dev/null 2>&1 &
        wrk_pid=$!
        while sessions=$(status "$s" | field sessions); (( sessions < SESSIONS )); do sleep 0.2; done
        kill "$wrk_pid" 2>/dev/null; wait "$wrk_pid" 2>/dev/null || true
        st=$(status "$s")
        sessions=$(echo "$st" | field sessions); used=$(echo "$st" | field bytes_used)
        case $s in
            uuid) example='0190a1b2-c3d4-7e5f-8a9b-…, 36 chars' ;;
            hex) example='32 lowercase hex digits (uuid4().hex, $request_id)' ;;
            opaque16) example='16-byte opaque (s-00000000000001)' ;;
            opaque32) example='32-byte opaque (session-000…)' ;;
            opaque40) example='40-byte opaque' ;;
            long600) example='600-byte JWT-style (kept as a digest)' ;;
        esac
        printf '| %s | %s | %s |\n' "$example" "$sessions" "$(awk -v u="$used" -v e="$empty" -v n="$sessions" 'BEGIN { printf "%.1f", (u - e) / n }')"
    done
} | tee "$ROOT/build/bench/id_memory.md"
