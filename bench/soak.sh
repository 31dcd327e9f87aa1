#!/usr/bin/env bash
# ./build.sh soak [SECONDS]: 10 000 sessions of mixed traffic through one
# nginx with 2 workers for SECONDS (default 60); reports requests, 5xx,
# worker crashes, sessions lost, and the zone's bytes before and after.
# Then zone exhaustion: 1 000 000 initializes into a zone that holds about
# 64 000 (8 MB), and the zone's bytes once they have all expired.
# Written to build/bench/soak.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/bench/soak"
MODULE="$ROOT/build/ngx_mcp_session_module.so"
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
PORT="${SOAK_PORT:-18500}"
SECONDS_TO_RUN="${1:-60}"
SESSIONS="${SOAK_SESSIONS:-10000}"

mkdir -p "$OUT/conf" "$OUT/logs" "$OUT/tmp"
g++ -std=c++17 -O2 -Wall -Wextra -pthread "$ROOT/bench/soak.cpp" -o "$OUT/soak"
g++ -std=c++17 -O2 -Wall -Wextra -pthread "$ROOT/bench/sse_bench.cpp" -o "$OUT/sse_bench"
: >"$OUT/logs/error.log"
user_line=""; [[ $(id -u) -eq 0 ]] && user_line="user root;"
cat >"$OUT/conf/nginx.conf" <<CONF
load_module $MODULE;
$user_line
worker_processes 2;
worker_rlimit_nofile 8192;
pid $OUT/logs/nginx.pid;
error_log $OUT/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $OUT/tmp;
    proxy_temp_path $OUT/tmp;
    keepalive_requests 1000000;
    mcp_session_zone zone=mcp:256m buffer=64;
    mcp_session_zone zone=small:8m idle_timeout=15s sweep_interval=1s;
    upstream backend { server 127.0.0.1:$((PORT + 1)); keepalive 32; }
    server {
        listen 127.0.0.1:$((PORT + 1));
        location / { add_header Mcp-Session-Id \$arg_sid; return 200 "ok"; }
    }
    server {
        listen 127.0.0.1:$PORT reuseport;
        location /mcp {
            mcp_session zone=mcp;
            mcp_session_stream on;
            mcp_session_heartbeat 1s;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /mcp/publish { mcp_session_publish zone=mcp; }
        location = /mcp/status { mcp_session_status zone=mcp; }
        location /small { mcp_session zone=small; proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location = /small/status { mcp_session_status zone=small; }
    }
}
CONF
"$NGINX_BIN" -p "$OUT/" -c "$OUT/conf/nginx.conf"
stop_nginx() { [[ -f $OUT/logs/nginx.pid ]] && kill -QUIT "$(cat "$OUT/logs/nginx.pid")" 2>/dev/null || true; }
trap stop_nginx EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
status() { curl -s "http://127.0.0.1:$PORT/mcp/status"; }
workers() { pgrep -P "$(cat "$OUT/logs/nginx.pid")" | sort | tr '\n' ' '; }

before=$(status)
workers_before=$(workers)
result=$("$OUT/soak" --port "$PORT" --sessions "$SESSIONS" --seconds "$SECONDS_TO_RUN" --threads 4 --streams 200)
after=$(status)
workers_after=$(workers)

# Exhaustion: every initialize must get 200 (populate stops at the first
# that does not); then wait, polling, for idle expiry and the sweep.
small_empty=$(curl -s "http://127.0.0.1:$PORT/small/status")
started=$SECONDS
"$OUT/sse_bench" populate --port "$PORT" --count 1000000 --prefix x- --path /small >/dev/null && populate_ok=yes || populate_ok=no
fill_seconds=$((SECONDS - started))
small_full=$(curl -s "http://127.0.0.1:$PORT/small/status")
full_warns=$(grep -c 'zone "small" is full' "$OUT/logs/error.log" || true)
deadline=$((SECONDS + 60))
small_after=$small_full
until [[ $small_after == *'"sessions":0,'* ]] || (( SECONDS > deadline )); do
    sleep 0.5
    small_after=$(curl -s "http://127.0.0.1:$PORT/small/status")
done

crashes=$(grep -c 'exited on signal' "$OUT/logs/error.log" || true)
alerts=$(grep -cE '\[(alert|crit|emerg)\]' "$OUT/logs/error.log" || true)

{
    echo "| soak: $SESSIONS sessions, 2 workers, ${SECONDS_TO_RUN}s | figure | goal |"
    echo "|---|---|---|"
    echo "| requests (per second) | $(echo "$result" | field requests) ($(echo "$result" | field per_s)/s) | — |"
    echo "| initializes / deletes / publishes / short streams | $(echo "$result" | field initializes) / $(echo "$result" | field deletes) / $(echo "$result" | field publishes) / $(echo "$result" | field short_streams) | — |"
    echo "| 5xx answers | $(echo "$result" | field 5xx) | 0 |"
    echo "| sessions lost (404 for a live session) | $(echo "$result" | field lost) | 0 |"
    echo "| ended sessions answered other than 404 | $(echo "$result" | field resurrected) | 0 |"
    echo "| events to 200 long-lived streams: accepted / received | $(echo "$result" | field held_events_accepted) / $(echo "$result" | field held_events_received) | equal |"
    echo "| worker crashes (error log) / alerts | $crashes / $alerts | 0 / 0 |"
    echo "| worker pids before → after | $workers_before→ $workers_after| unchanged |"
    echo "| zone evictions during the run | $(echo "$after" | field evicted) | 0 (zone sized so none is needed) |"
    echo "| zone bytes used before → after (all sessions ended) | $(echo "$before" | field bytes_used) → $(echo "$after" | field bytes_used) | equal |"
    echo "| sessions / rings / open streams after | $(echo "$after" | field sessions) / $(echo "$after" | field sessions_with_ring) / $(echo "$after" | field open_streams) | 0 / 0 / 0 |"
    echo "| exhaustion: 1 000 000 initializes into an 8 MB zone, all answered 200 | $populate_ok (${fill_seconds}s) | yes |"
    echo "| exhaustion: sessions kept / evicted | $(echo "$small_full" | field sessions) / $(echo "$small_full" | field evicted) | — |"
    echo "| exhaustion: 'is full' warn lines | $full_warns in ${fill_seconds}s | ≤ 1 per second |"
    echo "| exhaustion: zone bytes empty → full → all expired | $(echo "$small_empty" | field bytes_used) → $(echo "$small_full" | field bytes_used) → $(echo "$small_after" | field bytes_used) | first = last |"
} | tee "$OUT/../soak.md"
echo "$result" >"$OUT/result.json"
