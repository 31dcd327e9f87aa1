#!/usr/bin/env bash
# bench/state_save.sh: validation latency while the state file is saved.
# Fills one zone with POPULATION sessions (default 1 M), then alternates
# RUNS times between "saves" (state_interval=SAVE_INTERVAL, a full save of
# the zone every interval) and "no saves" (state_interval=1h), each a wrk
# run validating one session; prints p99 min/median/max for both.
# The mode switches by a reload, which keeps the zone (same size).
#   MCP_SESSION_MODULE=build/ngx_mcp_session_module.so bench/state_save.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/bench-state"
MODULE="${MCP_SESSION_MODULE:-$ROOT/build/ngx_mcp_session_module.so}"
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
PORT="${BENCH_PORT:-18500}"
UPSTREAM_PORT=$((PORT + 1))
POPULATION="${POPULATION:-1000000}"
RUNS="${RUNS:-3}"
WRK_SECONDS="${WRK_SECONDS:-6}"
SAVE_INTERVAL="${SAVE_INTERVAL:-1s}"
SSE="$OUT/sse_bench"

log() { printf '==> %s\n' "$*" >&2; }
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT/nginx/conf" "$OUT/nginx/logs" "$OUT/nginx/tmp" "$OUT/state"
chmod 0755 "$OUT/state"
g++ -std=c++17 -O2 -Wall -Wextra -pthread "$ROOT/bench/sse_bench.cpp" -o "$SSE"

write_config() {
    local interval="$1" user_line=""
    [[ $(id -u) -eq 0 ]] && user_line="user root;"
    cat >"$OUT/nginx/conf/nginx.conf" <<CONF
load_module $MODULE;
$user_line
worker_processes 2;
worker_rlimit_nofile 20000;
pid $OUT/nginx/logs/nginx.pid;
error_log $OUT/nginx/logs/error.log info;
events { worker_connections 19000; }
http {
    access_log off;
    client_body_temp_path $OUT/nginx/tmp;
    proxy_temp_path $OUT/nginx/tmp;
    keepalive_requests 10000000;
    mcp_session_zone zone=mcp:1024m idle_timeout=1h state=$OUT/state/mcp.state state_interval=$interval;
    upstream trivial { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$UPSTREAM_PORT reuseport;
        location / { add_header Mcp-Session-Id \$arg_sid; return 200 "ok"; }
    }
    server {
        listen 127.0.0.1:$PORT reuseport;
        location /mcp { mcp_session zone=mcp; proxy_pass http://trivial; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location = /mcp/status { mcp_session_status zone=mcp; }
    }
}
CONF
}

pidfile="$OUT/nginx/logs/nginx.pid"
stop_nginx() { [[ -f $pidfile ]] && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true; }
trap stop_nginx EXIT
workers() { pgrep -P "$(cat "$pidfile")" | sort; }

# A reload that changes only state_interval: waits for the new workers.
switch_to() {
    local before
    before="$(workers | tr '\n' ' ')"
    write_config "$1"
    kill -HUP "$(cat "$pidfile")"
    for _ in $(seq 1 600); do
        local now
        now="$(workers | tr '\n' ' ')"
        if [[ $(wc -w <<<"$now") -eq 2 ]] && ! grep -qwF -f <(tr ' ' '\n' <<<"$before" | sed '/^$/d') <<<"$now"; then
            return 0
        fi
        sleep 0.05
    done
    echo "reload did not finish" >&2
    exit 1
}

write_config 1h
"$NGINX_BIN" -p "$OUT/nginx/" -c "$OUT/nginx/conf/nginx.conf"
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

log "populating $POPULATION sessions"
"$SSE" populate --port "$PORT" --count "$POPULATION" --prefix pop- >/dev/null
"$SSE" populate --port "$PORT" --count 1 --prefix live- >/dev/null
echo "sessions in the zone: $(curl -s "http://127.0.0.1:$PORT/mcp/status" | sed -n 's/.*"sessions":\([0-9]*\).*/\1/p')" >&2

# p99 in ms from wrk --latency.
p99() {
    wrk -t1 -c16 -d"${WRK_SECONDS}s" --latency -H "Mcp-Session-Id: live-0" "http://127.0.0.1:$PORT/mcp" 2>/dev/null |
        awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
                           else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.3f\n", v }'
}
stats() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { printf "min %s median %s max %s (ms)", v[1], v[int((NR + 1) / 2)], v[NR] }'; }

with=() without=()
for i in $(seq 1 "$RUNS"); do
    switch_to "$SAVE_INTERVAL"
    with+=("$(p99)")
    switch_to 1h
    without+=("$(p99)")
    log "run $i: p99 with saves ${with[-1]} ms, without ${without[-1]} ms"
done
saves=$(grep -c "state file" "$OUT/nginx/logs/error.log" || true)
# Periodic saves log at info: slices, the longest and the mean lock hold of each.
holds=$(sed -n 's/.*state saved to .*, \([0-9]*\) slices (longest lock hold \([0-9]*\) us, mean \([0-9]*\) us).*/\1 \2 \3/p' "$OUT/nginx/logs/error.log")
echo "population $POPULATION, state_interval=$SAVE_INTERVAL, wrk -t1 -c16 ${WRK_SECONDS}s x $RUNS alternating"
echo "p99 validation latency with saves:    $(echo "${with[*]}" | stats)"
echo "p99 validation latency without saves: $(echo "${without[*]}" | stats)"
echo "state-file lines in the error log (errors/notices): $saves; state file size: $(stat -c %s "$OUT/state/mcp.state" 2>/dev/null || echo none) B"
if [[ -n $holds ]]; then
    echo "periodic saves: $(wc -l <<<"$holds"), slices per save: $(cut -d' ' -f1 <<<"$holds" | stats | sed 's/ (ms)//'), longest lock hold per save: $(cut -d' ' -f2 <<<"$holds" | stats | sed 's/(ms)/(us)/'), mean lock hold per slice: $(cut -d' ' -f3 <<<"$holds" | stats | sed 's/(ms)/(us)/')"
fi
