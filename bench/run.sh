#!/usr/bin/env bash
# ./build.sh bench: every scenario in one go, side by side in the same run,
# on one nginx (2 workers) with ngx_mcp_session, nchan and the Lua module
# loaded; prints a Markdown table and writes it to build/bench/results.md.
#
# Every ratio is taken RUNS (3) times, the sides alternated within each
# run, and reported as min / median / max; a goal counts as met only when
# its worst run meets it. On a shared 2-core machine one run can swing by
# 2x: the spread is part of the result.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/bench"
MODULE="${MODULE:-$ROOT/build/ngx_mcp_session_module.so}"  # MODULE=...: another build, e.g. a before/after comparison
NCHAN=/usr/lib/nginx/modules/ngx_nchan_module.so
NDK=/usr/lib/nginx/modules/ndk_http_module.so
LUA=/usr/lib/nginx/modules/ngx_http_lua_module.so
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
PORT="${BENCH_PORT:-18400}"
UPSTREAM_PORT=$((PORT + 1))
RUNS="${RUNS:-3}"
SLICES="${SLICES:-3}"          # alternated wrk slices per side in one run
SLICE_SECONDS="${SLICE_SECONDS:-2}"
POPULATION="${POPULATION:-1000000}"
SSE="$OUT/sse_bench"

log() { printf '==> %s\n' "$*" >&2; }

mkdir -p "$OUT/nginx/conf" "$OUT/nginx/logs" "$OUT/nginx/tmp"
g++ -std=c++17 -O2 -Wall -Wextra -pthread "$ROOT/bench/sse_bench.cpp" -o "$SSE"

user_line=""; [[ $(id -u) -eq 0 ]] && user_line="user root;"

bash "$ROOT/bench/sse64.sh" "$OUT/sse64.txt"  # a tools/call answered with 64 events of 1 KB
cat >"$OUT/nginx/conf/nginx.conf" <<CONF
load_module $MODULE;
load_module $NCHAN;
load_module $NDK;
load_module $LUA;
$user_line
worker_processes 2;
worker_rlimit_nofile 20000;
pid $OUT/nginx/logs/nginx.pid;
error_log $OUT/nginx/logs/error.log warn;
events { worker_connections 19000; }
http {
    access_log off;
    client_body_temp_path $OUT/nginx/tmp;
    proxy_temp_path $OUT/nginx/tmp;
    keepalive_requests 10000000;
    variables_hash_max_size 2048;  # nchan's and Lua's variables beside ours
    mcp_session_zone zone=mcp:1024m buffer=512 idle_timeout=1h;
    mcp_session_zone zone=rings:64m idle_timeout=1h;  # default ring: 256 events
    mcp_session_zone zone=small:16m idle_timeout=1h;  # stays at 1000 sessions, beside the 1M zone
    mcp_session_zone zone=rec:256m buffer=64 idle_timeout=1h;  # POST streams recorded (issue 13)
    # The recipe a user would write instead of the module (see /lua below).
    lua_shared_dict lua_sessions 64m;
    upstream trivial { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {  # the trivial upstream: answers at once, echoes ?sid= as the session id
        listen 127.0.0.1:$UPSTREAM_PORT reuseport;
        location / { add_header Mcp-Session-Id \$arg_sid; return 200 "ok"; }
        location = /sse64 { alias $OUT/sse64.txt; default_type text/event-stream; }
    }
    server {
        listen 127.0.0.1:$PORT reuseport;
        location /mcp {
            mcp_session zone=mcp;
            mcp_session_stream on;
            mcp_session_heartbeat off;
            proxy_pass http://trivial;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /small { mcp_session zone=small; proxy_pass http://trivial; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location /plain { proxy_pass http://trivial; proxy_http_version 1.1; proxy_set_header Connection ""; }
        include $ROOT/bench/post_stream_locations.conf;  # /rec, /mcp-sse, /plain-sse, /unbuffered-sse
        # What the gap is made of: the module with the stream off (plain
        # unbuffered proxying is in the included file).
        location /off-sse { mcp_session zone=rec; mcp_session_stream off; proxy_method GET; proxy_pass http://trivial/sse64; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location /lua { include $ROOT/bench/lua_recipe.conf; }
        location = /mcp/publish { mcp_session_publish zone=mcp; }
        location = /mcp/status { mcp_session_status zone=mcp; }
        location /rings { mcp_session zone=rings; proxy_pass http://trivial; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location = /rings/publish { mcp_session_publish zone=rings; }
        location = /rings/status { mcp_session_status zone=rings; }
        location = /nchan/pub { nchan_publisher; nchan_channel_id \$arg_id; }
        location = /nchan/sub { nchan_subscriber eventsource; nchan_channel_id \$arg_id; }
    }
}
CONF

base="http://127.0.0.1:$PORT"
rps() { sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\).*/\1/p'; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", a / b }'; }
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
minimum() { tr ' ' '\n' | sed '/^$/d' | sort -g | head -1; }
maximum() { tr ' ' '\n' | sed '/^$/d' | sort -g | tail -1; }
spread() { echo "$(minimum <<<"$1") / $(median <<<"$1") / $(maximum <<<"$1")"; }
wrk_rps() { wrk -t2 -c64 -d"${SLICE_SECONDS}s" "$@" 2>/dev/null | rps; }
validate_rps() { wrk_rps -s "$ROOT/bench/validate.lua" "$@"; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; }

# One run of N sides (shell commands printing req/s): SLICES slices each,
# alternated, the order rotated per slice so no side always goes first.
# Prints each side's mean req/s.
alternated_run() {
    local sides=("$@") n=$# totals=() i s k
    for ((i = 0; i < n; i++)); do totals[i]=0; done
    for ((s = 0; s < SLICES; s++)); do
        for ((k = 0; k < n; k++)); do
            i=$(((k + s) % n))
            totals[i]=$(sum "${totals[i]}" "$(eval "${sides[i]}")")
        done
    done
    for ((i = 0; i < n; i++)); do printf '%s ' "$(awk -v t="${totals[i]}" -v s="$SLICES" 'BEGIN { printf "%.0f", t / s }')"; done
    echo
}

rows=()
limits=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
# worst_meets WORST GOAL DIR
meets() { awk -v v="$1" -v g="$2" -v dir="$3" 'BEGIN { ok = (dir == ">=") ? (v >= g) : (dir == ">") ? (v > g) : (v <= g); print ok ? "met" : "missed" }'; }
# limit SCENARIO VERDICT TEXT: a "what limits it" line for a missed goal.
limit() { [[ $2 == missed* ]] && limits+=("- **$1**: $3"); return 0; }

# ratio_rows A_CMD B_CMD → sets A_MEDIAN B_MEDIAN RATIOS (space separated, one per run)
ratio_runs() {
    local as="" bs="" rs="" a b r
    for ((run = 1; run <= RUNS; run++)); do
        read -r a b < <(alternated_run "$1" "$2")
        as+="$a "; bs+="$b "; rs+="$(ratio "$a" "$b") "
    done
    A_MEDIAN=$(median <<<"$as"); B_MEDIAN=$(median <<<"$bs"); RATIOS=$rs
}

# no_alerts LOG NAME: false (and says so) when LOG has alert lines.
no_alerts() {
    local alerts; alerts=$(grep -cE '\[(alert|crit|emerg)\]|exited on signal' "$1" || true)
    ((alerts == 0)) || { echo "$2 bench: $alerts alert lines in $1" >&2; return 1; }
}

# The start of the nginx.conf of a bench nginx of its own in DIR (2
# workers, no access log) loading the MODULEs given, this module when
# none; the caller adds the rest of http.
own_nginx_prologue() {
    local dir=$1 modules
    shift
    modules=$(printf 'load_module %s;\n' "${@:-$MODULE}")
    cat <<CONF
$modules
$user_line
worker_processes 2;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    keepalive_requests 10000000;
CONF
}
# stop_own_nginx DIR: asks the bench nginx of its own in DIR to quit, if it runs.
stop_own_nginx() { local pid; pid=$(cat "$1/logs/nginx.pid" 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null || true; }
# poll_until CMD...: true as soon as CMD succeeds (every 50 ms, 10 s at most).
poll_until() { local i; for i in $(seq 1 200); do "$@" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# SSE delivery, shared by the single-node rows (the main nginx) and the
# cross-node rows (redis_rows): DELIVER is a function taking TARGET
# (mcp|nchan) STREAMS RATE [SECONDS] and printing sse_bench's JSON line.
deliver() { "$SSE" deliver --port "$PORT" --target "$1" --streams "$2" --rate "$3" --seconds "${4:-3}"; }

# sse_latency_rows WHAT DELIVER STREAMS RATE LIMIT: RUNS runs of DELIVER
# mcp and DELIVER nchan (ours first in odd runs, nchan in even ones), then
# rows of p50, p99 (goal ≤ nchan, every run; LIMIT says what limits it
# when missed) and lost / duplicated events per run (goal 0).
sse_latency_rows() {
    local what=$1 fn=$2 streams=$3 rate=$4 run ours peer a b lo dup lp dp
    local p50o="" p50p="" p99o="" p99p="" p50r="" p99r="" lost_ok=met lostinfo="" verdict
    log "$what ($RUNS alternated runs)"
    for ((run = 1; run <= RUNS; run++)); do
        if ((run % 2)); then ours=$($fn mcp "$streams" "$rate"); peer=$($fn nchan "$streams" "$rate")
        else peer=$($fn nchan "$streams" "$rate"); ours=$($fn mcp "$streams" "$rate"); fi
        a=$(field p50_us <<<"$ours"); b=$(field p50_us <<<"$peer"); p50o+="$a "; p50p+="$b "; p50r+="$(ratio "$a" "$b") "
        a=$(field p99_us <<<"$ours"); b=$(field p99_us <<<"$peer"); p99o+="$a "; p99p+="$b "; p99r+="$(ratio "$a" "$b") "
        lo=$(field lost <<<"$ours"); dup=$(field duplicates <<<"$ours"); lp=$(field lost <<<"$peer"); dp=$(field duplicates <<<"$peer")
        [[ $lo == 0 && $dup == 0 ]] || lost_ok=missed
        lostinfo+="$lo/$dup vs $lp/$dp (nchan); "
    done
    row "$what: p50 latency (µs), ratio to nchan" "$(median <<<"$p50o") (runs: $(spread "$p50o"))" "$(median <<<"$p50p") (nchan; runs: $(spread "$p50p"))" "$(spread "$p50r")" "—" "—"
    verdict=$(meets "$(maximum <<<"$p99r")" 1 "<=")
    row "$what: p99 latency (µs), ratio to nchan" "$(median <<<"$p99o") (runs: $(spread "$p99o"))" "$(median <<<"$p99p") (nchan; runs: $(spread "$p99p"))" "$(spread "$p99r")" "≤ nchan, every run" "$verdict"
    limit "$what p99" "$verdict" "$5"
    row "$what: lost / duplicated events per run, ours vs nchan" "${lostinfo%; }" "—" "—" "0 every run" "$lost_ok"
}

# The highest rate (of a ladder) at which every accepted event arrived
# once and the publisher kept up (≥ 97% of the rate accepted). A rung gets
# a second try before the ladder stops, for either side alike: one noisy
# 3 s run on a shared 2-core machine should not decide the maximum.
# rung_passes DELIVER TARGET RATE
rung_passes() {
    local out
    out=$($1 "$2" 1000 "$3" 3)
    [[ $(echo "$out" | field lost) == 0 && $(echo "$out" | field duplicates) == 0 ]] &&
        awk -v a="$(echo "$out" | field accepted)" -v r="$3" 'BEGIN { exit !(a >= 0.97 * r * 3) }'
}
# max_rate DELIVER TARGET FROM STEP TO
max_rate() {
    local best=0 rate
    for rate in $(seq "$3" "$4" "$5"); do
        if rung_passes "$1" "$2" "$rate" || rung_passes "$1" "$2" "$rate"; then
            best=$rate
        else
            break
        fi
    done
    echo "$best"
}
# max_rate_row WHAT DELIVER FROM STEP TO LIMIT: RUNS alternated ladders
# per side (1000 streams), the row with its goal (≥ 1.5× nchan, every run).
max_rate_row() {
    local what=$1 fn=$2 run a b mo="" mp="" mr="" verdict
    log "$what ($RUNS alternated runs, ladder $3..$5 step $4)"
    for ((run = 1; run <= RUNS; run++)); do
        if ((run % 2)); then a=$(max_rate "$fn" mcp "$3" "$4" "$5"); b=$(max_rate "$fn" nchan "$3" "$4" "$5")
        else b=$(max_rate "$fn" nchan "$3" "$4" "$5"); a=$(max_rate "$fn" mcp "$3" "$4" "$5"); fi
        mo+="$a "; mp+="$b "; mr+="$(ratio "$a" "$b") "
    done
    verdict=$(meets "$(minimum <<<"$mr")" 1.5 ">=")
    row "$what (events/s)" "$(median <<<"$mo") (runs: ${mo% })" "$(median <<<"$mp") (nchan; runs: ${mp% })" "$(spread "$mr")" "≥ 1.5×, every run" "$verdict"
    limit "$what" "$verdict" "$6"
}

# Issue 14: validated requests/s through a 3-server upstream with
# mcp_session_sticky vs plain round robin to the same 3 servers, in a
# nginx of its own (2 workers, this module only) so the row runs alone
# with BENCH_ONLY=sticky. The servers are nginx `return 200` locations on
# three ports that echo ?sid= as the session id and name their port in
# X-Replica; 300 sessions per side, each request naming the next one
# (bench/sticky.lua), so the sticky side's requests go to all three.
STICKY_PORT=$((PORT + 20))
STICKY_SERVERS=($((PORT + 21)) $((PORT + 22)) $((PORT + 23)))
STICKY_SESSIONS=300
stop_sticky() { stop_own_nginx "$OUT/sticky"; }
sticky_rows() {
    local dir="$OUT/sticky" servers="" listens="" p
    mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp"
    for p in "${STICKY_SERVERS[@]}"; do
        servers+="server 127.0.0.1:$p; "
        listens+="listen 127.0.0.1:$p reuseport; "
    done
    { own_nginx_prologue "$dir"; cat <<CONF
    mcp_session_zone zone=sticky:16m idle_timeout=1h;
    mcp_session_zone zone=rr:16m idle_timeout=1h;
    upstream sticky { $servers mcp_session_sticky; keepalive 64; }
    upstream rr { $servers keepalive 64; }
    server {
        $listens
        location / { add_header Mcp-Session-Id \$arg_sid; add_header X-Replica \$server_port; return 200 "ok"; }
    }
    server {
        listen 127.0.0.1:$STICKY_PORT reuseport;
        location /sticky { mcp_session zone=sticky; proxy_pass http://sticky; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location /rr { mcp_session zone=rr; proxy_pass http://rr; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF
    } >"$dir/conf/nginx.conf"
    if ! "$NGINX_BIN" -t -q -p "$dir/" -c "$dir/conf/nginx.conf" 2>"$dir/config.err"; then
        row "sticky: validated req/s, 3-server \`mcp_session_sticky\` upstream vs round robin" "not run: $(head -1 "$dir/config.err" | sed 's/.*\[emerg\] [0-9#]*: //')" "—" "—" "≥ 0.98×, every run" "missed (not run)"
        return 1
    fi
    "$NGINX_BIN" -p "$dir/" -c "$dir/conf/nginx.conf"
    local i up=0
    for i in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$STICKY_PORT") 2>/dev/null && { up=1; break; }; sleep 0.05; done
    local sbase="http://127.0.0.1:$STICKY_PORT" rc=0
    if ((up == 0)); then echo "the sticky bench nginx did not start" >&2; rc=1; fi
    ((rc == 0)) && "$SSE" populate --port "$STICKY_PORT" --count "$STICKY_SESSIONS" --prefix s- --path /sticky >/dev/null
    ((rc == 0)) && "$SSE" populate --port "$STICKY_PORT" --count "$STICKY_SESSIONS" --prefix s- --path /rr >/dev/null
    # Before timing anything: every session of the sticky side stays on one
    # server, the sessions spread over all three, and round robin really moves.
    local sid seen first spread="" moved=0 pinned=1
    if ((rc == 0)); then
        for i in $(seq 1 30); do
            sid="s-$i"
            seen=$(for _ in 1 2 3 4; do curl -s -o /dev/null -D - -H "Mcp-Session-Id: $sid" -d '{}' "$sbase/sticky" | sed -n 's/^X-Replica: *\([0-9]*\).*/\1/p'; done | sort -u)
            [[ $(wc -l <<<"$seen") -eq 1 && -n $seen ]] || pinned=0
            spread+="$seen "
            seen=$(for _ in 1 2 3 4; do curl -s -o /dev/null -D - -H "Mcp-Session-Id: $sid" -d '{}' "$sbase/rr" | sed -n 's/^X-Replica: *\([0-9]*\).*/\1/p'; done | sort -u)
            [[ $(wc -l <<<"$seen") -gt 1 ]] && moved=1
        done
        local servers_used; servers_used=$(tr ' ' '\n' <<<"$spread" | sed '/^$/d' | sort -u | wc -l)
        if ((pinned == 0 || servers_used != 3 || moved == 0)); then
            echo "sticky bench: pinned=$pinned, servers used by 30 sessions=$servers_used, round robin moved=$moved" >&2
            row "sticky: validated req/s, 3-server \`mcp_session_sticky\` upstream vs round robin" "not run: sessions not pinned (pinned=$pinned, servers used $servers_used of 3)" "—" "—" "≥ 0.98×, every run" "missed (not pinned)"
            rc=1
        fi
    fi
    if ((rc == 0)); then
        sticky_rps() { wrk_rps -s "$ROOT/bench/sticky.lua" "$@" -- "$STICKY_SESSIONS" s-; }
        for i in sticky rr; do wrk -t2 -c64 -d2s -s "$ROOT/bench/sticky.lua" "$sbase/$i" -- "$STICKY_SESSIONS" s- >/dev/null 2>&1; done
        log "sticky: validated req/s through mcp_session_sticky vs round robin, 3 servers ($RUNS runs)"
        ratio_runs "sticky_rps $sbase/sticky" "sticky_rps $sbase/rr"
        local verdict; verdict=$(meets "$(minimum <<<"$RATIOS")" 0.98 ">=")
        row "sticky: validated req/s, JSON-RPC POST naming one of $STICKY_SESSIONS live sessions, 3-server \`mcp_session_sticky\` upstream vs round robin to the same servers" \
            "$A_MEDIAN" "$B_MEDIAN (round robin)" "$(spread "$RATIOS")" "≥ 0.98×, every run" "$verdict"
        limit "sticky" "$verdict" "see the runs' spread; the pinned server is looked up in the session's zone record the validation already holds."
        no_alerts "$dir/logs/error.log" sticky || rc=1
    fi
    stop_sticky
    return "$rc"
}

# Issue 15: validated requests/s for a session the zone holds, a zone
# with redis= (a private redis-server, Debian's) vs the same zone without,
# in a nginx of its own (2 workers); then streams across two nodes per
# side, ours vs nchan on the same Redis (cross_node_rows); then
# bench/redis_nodes.pl's two-node figures. BENCH_ONLY=redis runs these
# rows alone.
REDIS_NGINX_PORT=$((PORT + 30))
REDIS_PORT=$((PORT + 31))
# The cross-node rows' nodes, "A B" ports per side; node A publishes,
# node B holds the streams. Their prefixes: $OUT/redis/SIDE-a, SIDE-b.
declare -A CROSS_NODES=([mcp]="$((PORT + 40)) $((PORT + 41))" [nchan]="$((PORT + 42)) $((PORT + 43))")
# The cross-node ladder of publish rates (events/s), starting at a rate
# both sides sustain on this 2-core machine (nchan's maximum was 16 000/s)
# so that one run of both ladders stays near a minute.
CROSS_RATE_FROM="${CROSS_RATE_FROM:-8000}" CROSS_RATE_STEP="${CROSS_RATE_STEP:-4000}" CROSS_RATE_TO="${CROSS_RATE_TO:-60000}"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
redis_pings() { [[ $(rcli ping) == PONG* ]]; }
redis_used_memory() { rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
# link_up URL: the zone status at URL shows its Redis link up.
link_up() { curl -s "$1" | grep -q '"link":"up"'; }
stop_redis_bench() {
    local d pid
    for d in "$OUT/redis" "$OUT"/redis/{mcp,nchan}-{a,b}; do stop_own_nginx "$d"; done
    pid=$(cat "$OUT/redis/redis.pid" 2>/dev/null) && kill "$pid" 2>/dev/null || true
}
redis_rows() {
    local dir="$OUT/redis" rc=0
    mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp" "$dir/data"
    printf 'port %s\nbind 127.0.0.1\nsave ""\nappendonly no\ndaemonize yes\npidfile %s/redis.pid\ndir %s/data\nlogfile %s/redis.log\n' \
        "$REDIS_PORT" "$dir" "$dir" "$dir" >"$dir/redis.conf"
    redis-server "$dir/redis.conf"
    poll_until redis_pings || { echo "the bench redis-server did not answer" >&2; return 1; }
    { own_nginx_prologue "$dir"; cat <<CONF
    mcp_session_zone zone=clustered:16m idle_timeout=1h redis=127.0.0.1:$REDIS_PORT;
    mcp_session_zone zone=alone:16m idle_timeout=1h;
    upstream backend { server 127.0.0.1:$((REDIS_NGINX_PORT + 2)); keepalive 64; }
    server {
        listen 127.0.0.1:$((REDIS_NGINX_PORT + 2)) reuseport;
        location / { add_header Mcp-Session-Id \$arg_sid; return 200 "ok"; }
    }
    server {
        listen 127.0.0.1:$REDIS_NGINX_PORT reuseport;
        location /clustered { mcp_session zone=clustered; proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location /alone { mcp_session zone=alone; proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location = /clustered/status { mcp_session_status zone=clustered; }
    }
}
CONF
    } >"$dir/conf/nginx.conf"
    "$NGINX_BIN" -p "$dir/" -c "$dir/conf/nginx.conf"
    local i base="http://127.0.0.1:$REDIS_NGINX_PORT"
    poll_until link_up "$base/clustered/status"
    "$SSE" populate --port "$REDIS_NGINX_PORT" --count 1000 --prefix live- --path /clustered >/dev/null
    "$SSE" populate --port "$REDIS_NGINX_PORT" --count 1000 --prefix live- --path /alone >/dev/null
    for i in clustered alone; do wrk -t2 -c64 -d2s -s "$ROOT/bench/validate.lua" "$base/$i" >/dev/null 2>&1; done
    log "redis=: validated req/s for locally held sessions vs a zone without Redis ($RUNS runs)"
    ratio_runs "validate_rps $base/clustered" "validate_rps $base/alone"
    local verdict; verdict=$(meets "$(minimum <<<"$RATIOS")" 0.95 ">=")
    row "redis=: validated req/s, JSON-RPC POST naming a session the zone holds, zone with \`redis=\` vs without" \
        "$A_MEDIAN" "$B_MEDIAN (no redis=)" "$(spread "$RATIOS")" "≥ 0.95×, every run" "$verdict"
    limit "redis= validation" "$verdict" "a local copy is validated without Redis; a touch due adds the token to the worker's batch (one set insert)."
    no_alerts "$dir/logs/error.log" redis || rc=1
    stop_own_nginx "$dir"
    cross_node_rows || rc=1
    stop_redis_bench
    log "redis=: two nodes, sessions made on A used on B, DELETE on B seen on A"
    local nodes
    if nodes=$(perl "$ROOT/bench/redis_nodes.pl" "$dir/nodes" 2000 2>"$dir/nodes.err") && [[ $(field alerts <<<"$nodes") == 0 ]]; then
        row "redis=: first request on node B for a session made on A (one Redis lookup), p50 / p99 (ms)" \
            "$(field first_p50_ms <<<"$nodes") / $(field first_p99_ms <<<"$nodes")" \
            "$(field local_p50_ms <<<"$nodes") / $(field local_p99_ms <<<"$nodes") (its next request, local copy)" "—" "—" "—"
        row "redis=: DELETE on node B until node A answers 404, p50 / p99 / max of 100, A polled every 20 ms (ms)" \
            "$(field end_p50_ms <<<"$nodes") / $(field end_p99_ms <<<"$nodes") / $(field end_max_ms <<<"$nodes")" "—" "—" "< 1000 ms" \
            "$(meets "$(field end_max_ms <<<"$nodes")" 1000 "<=")"
        row "redis=: Redis memory per session (2000 sessions, 32-hex ids)" "$(field redis_bytes_per_session <<<"$nodes") B" "—" "—" "—" "—"
    else
        row "redis=: two-node figures" "not run: $(head -1 "$dir/nodes.err")" "—" "—" "—" "missed (not run)"
        rc=1
    fi
    return "$rc"
}

# cross_node_conf SIDE DIR PORT: the nginx.conf of one cross-node node.
# mcp: this module, redis= on database 1, the node's backend on a unix
# socket of its own (echoes ?sid= as the session id); nchan: nchan in
# Redis mode on database 2 (an upstream with nchan_redis_server and
# nchan_redis_pass, the form nchan 1.3.6 asks for instead of
# nchan_redis_url / nchan_use_redis), keeping as many messages per
# channel as our ring keeps per session (256), and without this module:
# nchan carries its own hiredis, whose symbols the system libhiredis
# this module loads would override (nchan's workers then time out
# connecting to Redis and crash).
cross_node_conf() {
    local side=$1 dir=$2 port=$3
    if [[ $side == mcp ]]; then
        own_nginx_prologue "$dir"; cat <<CONF
    mcp_session_zone zone=mcp:64m idle_timeout=1h redis=127.0.0.1:$REDIS_PORT redis_database=1;
    upstream backend { server unix:$dir/backend.sock; keepalive 64; }
    server {
        listen unix:$dir/backend.sock backlog=4096;  # 1000 GETs at once each open the backend's stream
        location / { add_header Mcp-Session-Id \$arg_sid; return 200 "ok"; }
    }
    server {
        listen 127.0.0.1:$port reuseport;
        location /mcp {
            mcp_session zone=mcp;
            mcp_session_stream on;
            mcp_session_heartbeat off;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /mcp/publish { mcp_session_publish zone=mcp; }
        location = /mcp/status { mcp_session_status zone=mcp; }
    }
}
CONF
    else
        own_nginx_prologue "$dir" "$NCHAN"; cat <<CONF
    upstream nchan_redis { nchan_redis_server "redis://127.0.0.1:$REDIS_PORT/2"; }
    nchan_message_buffer_length 256;
    server {
        listen 127.0.0.1:$port reuseport;
        location = /nchan/pub { nchan_publisher; nchan_channel_id \$arg_id; nchan_redis_pass nchan_redis; }
        location = /nchan/sub { nchan_subscriber eventsource; nchan_channel_id \$arg_id; nchan_redis_pass nchan_redis; }
    }
}
CONF
    fi
}

# start_cross_node SIDE NODE PORT: starts node NODE (a or b) of SIDE in
# $OUT/redis/SIDE-NODE with a fresh error log (no_alerts reads this run's).
start_cross_node() {
    local dir="$OUT/redis/$1-$2"
    mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp"
    : >"$dir/logs/error.log"
    cross_node_conf "$1" "$dir" "$3" >"$dir/conf/nginx.conf"
    "$NGINX_BIN" -p "$dir/" -c "$dir/conf/nginx.conf"
}

# nchan_publishes PORT / nchan_holds PORT: a probe message published on
# one nchan node is accepted, and another node sees it (only Redis can
# have told it).
nchan_publishes() { [[ $(curl -s -o /dev/null -w '%{http_code}' -d probe "http://127.0.0.1:$1/nchan/pub?id=probe") == 20[12] ]]; }
nchan_holds() { curl -s -H 'Accept: text/json' "http://127.0.0.1:$1/nchan/pub?id=probe" | grep -q '"messages": 1,'; }

# cross_ready: every cross-node node serves and talks to Redis: ours with
# both links up (then the fresh database's re-seed window is closed, as
# t/042 does), nchan with a probe published on A seen from B.
cross_ready() {
    local a b
    read -r a b <<<"${CROSS_NODES[mcp]}"
    poll_until link_up "http://127.0.0.1:$a/mcp/status" && poll_until link_up "http://127.0.0.1:$b/mcp/status" || return 1
    rcli -n 1 del mcp:reseeding >/dev/null
    read -r a b <<<"${CROSS_NODES[nchan]}"
    poll_until nchan_publishes "$a" && poll_until nchan_holds "$b" || return 1
    curl -s -o /dev/null -X DELETE "http://127.0.0.1:$a/nchan/pub?id=probe"
}

# deliver_across TARGET STREAMS RATE [SECONDS]: streams held on TARGET's
# node B, sessions learned and events published on its node A.
deliver_across() {
    local a b
    read -r a b <<<"${CROSS_NODES[$1]}"
    "$SSE" deliver --port "$b" --publish-port "$a" --target "$1" --streams "$2" --rate "$3" --seconds "${4:-3}"
}

# crosses TARGET: a short run across TARGET's nodes delivered every event
# (for nchan the proof that it goes through Redis: a node-local store
# would lose them all). Also the untimed warm-up of both sides.
crosses() {
    local out
    out=$(deliver_across "$1" 100 200 1)
    [[ $(field lost <<<"$out") == 0 && $(field delivered <<<"$out") -gt 0 ]] ||
        { echo "cross-node bench: $1 did not deliver across nodes: $out" >&2; return 1; }
}

# redis_event_bytes TARGET SESSIONS EVENTS: Redis bytes per event for
# EVENTS events of 1 KB to each of SESSIONS sessions (nchan: channels),
# published on node A; ours' sessions are made before the first reading,
# so what is counted is the events and the streams holding them (nchan's
# channels are made by their first message, so counted too). Prints
# "BYTES_PER_EVENT PAYLOAD_BYTES STORED" (STORED: entries in Redis
# Streams, or nchan message keys).
redis_event_bytes() {
    local a before after fill stored
    read -r a _ <<<"${CROSS_NODES[$1]}"
    if [[ $1 == mcp ]]; then "$SSE" populate --port "$a" --count "$2" --prefix "mem-$1-" >/dev/null; fi
    before=$(redis_used_memory)
    fill=$("$SSE" fill --port "$a" --target "$1" --count "$2" --prefix "mem-$1-" --events "$3" --size 1024) || return 1
    after=$(redis_used_memory)
    if [[ $1 == mcp ]]; then  # the sessions' Redis Streams, mcp:e:{0HEX-OF-ID}
        stored=$(rcli -n 1 --scan --pattern "mcp:e:{0$(printf 'mem-mcp-' | od -An -tx1 | tr -d ' \n')*" |
            while read -r key; do rcli -n 1 xlen "$key"; done | awk '{ n += $1 } END { print n + 0 }')
    else
        stored=$(rcli -n 2 --scan --pattern '{channel:/mem-nchan-*}:msg:*' | wc -l)
    fi
    awk -v d="$((after - before))" -v n="$(($2 * $3))" -v p="$(field payload_bytes <<<"$fill")" -v s="$stored" \
        'BEGIN { printf "%.0f %d %d\n", d / n, p, s }'
}

# Issue 15, streams across nodes: two nodes per side (2 workers each) on
# the same private Redis and the same load client, ours (redis=, database
# 1) vs nchan in Redis mode (database 2); streams held on node B, events
# published on node A, so every event crosses through Redis.
cross_node_rows() {
    local side node a b rc=0 ours_bytes payload ours_stored peer_bytes peer_stored
    for side in mcp nchan; do
        read -r a b <<<"${CROSS_NODES[$side]}"
        start_cross_node "$side" a "$a" && start_cross_node "$side" b "$b" || rc=1
    done
    if ((rc == 0)) && cross_ready && crosses mcp && crosses nchan; then
        sse_latency_rows "cross-node SSE, published on node A, 1000 streams on node B @ 2000/s" deliver_across 1000 2000 \
            "an event crosses Redis twice (the script numbering it, which the publish waits for, then the pub/sub message to node B); the tail is scheduling on 2 cores shared by 4 nginx workers, redis-server and the load client."
        max_rate_row "cross-node max publish rate, zero loss, 1000 streams on node B, published on node A" deliver_across \
            "$CROSS_RATE_FROM" "$CROSS_RATE_STEP" "$CROSS_RATE_TO" \
            "every publish is one script on the one Redis (XADD, PUBLISH) and its answer waits for it; redis-server shares the 2 cores with 4 nginx workers and the load client."
        log "cross-node: Redis memory per event, 100 sessions (channels) x 200 events of 1 KB"
        read -r ours_bytes payload ours_stored < <(redis_event_bytes mcp 100 200)
        read -r peer_bytes _ peer_stored < <(redis_event_bytes nchan 100 200)
        row "cross-node: Redis memory per event (\`INFO memory\` used_memory after − before, 100 sessions × 200 events of $payload B published on node A; stored: $ours_stored Redis Stream entries, nchan $peer_stored messages)" \
            "$ours_bytes B" "$peer_bytes B (nchan)" "$(ratio "$ours_bytes" "$peer_bytes")" "—" "—"
    else
        row "cross-node streams, ours vs nchan in Redis mode" "not run: the nodes did not come up or did not deliver across (see stderr)" "—" "—" "—" "missed (not run)"
        rc=1
    fi
    for side in mcp nchan; do
        for node in a b; do
            no_alerts "$OUT/redis/$side-$node/logs/error.log" "cross-node $side-$node" || rc=1
            stop_own_nginx "$OUT/redis/$side-$node"
        done
    done
    return "$rc"
}

# Issue 14: the time to heal (mcp_session_heal), client request -> served
# in the new backend session, from bench/heal.pl (its own nginx and two
# stateful Perl MCP backends), RUNS runs of 200 sessions; beside it the
# same call of a healthy session through the same nginx.
heal_rows() {
    local run out rm="" rp="" gm="" gp="" nm="" np="" failed=0
    log "time to heal ($RUNS runs of 200 sessions)"
    for ((run = 1; run <= RUNS; run++)); do
        if ! out=$(perl "$ROOT/bench/heal.pl" "$MODULE" 200 2>"$OUT/heal.err") ||
            [[ $(field alerts <<<"$out") != 0 || $(field restarted_heals <<<"$out") != 200 ]]; then
            failed=$((failed + 1)); continue
        fi
        rm+="$(field restarted_median_us <<<"$out") "; rp+="$(field restarted_p99_us <<<"$out") "
        gm+="$(field gone_median_us <<<"$out") "; gp+="$(field gone_p99_us <<<"$out") "
        nm+="$(field normal_median_us <<<"$out") "; np+="$(field normal_p99_us <<<"$out") "
    done
    local note=""; ((failed == 0)) || note=" ($failed of $RUNS runs failed: $(head -1 "$OUT/heal.err"))"
    row "time to heal, backend restarted (every session lost): the healing call's median / p99 (µs)$note" \
        "$(median <<<"$rm") / $(median <<<"$rp") (runs: medians $(spread "$rm"); p99 $(spread "$rp"))" \
        "$(median <<<"$nm") / $(median <<<"$np") (a healthy session's call)" "—" "—" "—"
    row "time to heal, replica gone (connection refused): the healing call's median / p99 (µs)$note" \
        "$(median <<<"$gm") / $(median <<<"$gp") (runs: medians $(spread "$gm"); p99 $(spread "$gp"))" \
        "$(median <<<"$nm") / $(median <<<"$np") (a healthy session's call)" "—" "—" "—"
    return "$failed"
}

# BENCH_ONLY=heal: those rows alone.
if [[ ${BENCH_ONLY:-} == heal ]]; then
    rc=0
    heal_rows || rc=$?
    printf '%s\n' "${rows[@]}" | tee "$OUT/heal.md"
    exit "$rc"
fi

# The zone filled to POPULATION sessions: its memory per session, a lookup
# there against the zone of 1000, validation and session creation there
# against plain proxy_pass. BENCH_ONLY=population runs only these rows.
population_rows() {
    log "populating to $POPULATION sessions"
    "$SSE" populate --port "$PORT" --count $((POPULATION - 1000)) --prefix pop- >/dev/null
    status=$(curl -s "$base/mcp/status")
    sessions=$(echo "$status" | field sessions)
    used=$(echo "$status" | field bytes_used)
    per_session=$(awk -v u="$used" -v s="$sessions" 'BEGIN { printf "%.0f", u / s }')
    verdict=$(meets "$per_session" 256 "<=")
    row "shared memory per idle session (bytes used / sessions, $sessions sessions)" "$per_session B" "—" "—" "≤ 256 B" "$verdict"
    limit "memory per idle session" "$verdict" "the zone's fixed part (worker inboxes, the slab's own pages, the session index: 1/64 of the zone) spread over only $sessions sessions; a session record is one 128-byte slab chunk."

    # The same request against two zones of the same nginx, alternated in
    # one window: a zone of $POPULATION sessions and one kept at 1000.
    log "lookup cost at $POPULATION sessions"
    ratio_runs "validate_rps $base/mcp" "validate_rps $base/small"
    verdict=$(meets "$(minimum <<<"$RATIOS")" 0.95 ">=")
    row "lookup: req/s at $sessions vs 1000 sessions (two zones, alternated)" "$A_MEDIAN" "$B_MEDIAN (1000 sessions)" "$(spread "$RATIOS")" "≥ 0.95×, every run" "$verdict"
    limit "lookup at $sessions" "$verdict" "a lookup in either zone reads one bucket of its hash table and the record (a session in use keeps both cached), so what moves the ratio is the machine."
    ratio_runs "validate_rps $base/mcp" "validate_rps $base/plain"
    row "validation at $sessions sessions vs plain proxy_pass" "$A_MEDIAN" "$B_MEDIAN (plain proxy)" "$(spread "$RATIOS")" "—" "—"

    log "session creation at $sessions sessions"
    # A fresh label per slice (each runs in a subshell): every id is new.
    create_mcp() { wrk_rps -s "$ROOT/bench/create.lua" "$base/mcp" -- "m$(date +%s%N)"; }
    # Ids of the same length on both sides (the upstream echoes them).
    create_plain() { wrk_rps -s "$ROOT/bench/create.lua" "$base/plain" -- "p$(date +%s%N)"; }
    ratio_runs create_mcp create_plain
    verdict=$(meets "$(minimum <<<"$RATIOS")" 0.95 ">=")
    row "session creation: initialize exchanges/s at $sessions sessions vs plain proxy" "$A_MEDIAN" "$B_MEDIAN (plain proxy)" "$(spread "$RATIOS")" "≥ 0.95×, every run" "$verdict"
    limit "session creation" "$verdict" "the lookup of a new id reads one bucket of the zone's hash table, whose filter rules the id out, and the insert goes to the chain's head (perf at a million: session_index::find about 1 % of worker samples, the bucket's cache and TLB miss). What is left is the work of every creation: about 2 000 instructions over plain, 700 of them under the zone lock (bench/callgrind.sh), writing a fresh record, a page fault for every 32 new records, and the lock shared by both workers."
}

# BENCH_ONLY=redis: those rows alone, without the main nginx.
if [[ ${BENCH_ONLY:-} == redis ]]; then
    trap stop_redis_bench EXIT
    rc=0
    redis_rows || rc=$?
    printf '%s\n' "${rows[@]}" | tee "$OUT/redis.md"
    exit "$rc"
fi

# BENCH_ONLY=sticky: that row alone, without the main nginx.
if [[ ${BENCH_ONLY:-} == sticky ]]; then
    trap stop_sticky EXIT
    rc=0
    sticky_rows || rc=$?
    printf '%s\n' "${rows[@]}" | tee "$OUT/sticky.md"
    exit "$rc"
fi

"$NGINX_BIN" -p "$OUT/nginx/" -c "$OUT/nginx/conf/nginx.conf"
stop_nginx() { [[ -f $OUT/nginx/logs/nginx.pid ]] && kill -QUIT "$(cat "$OUT/nginx/logs/nginx.pid")" 2>/dev/null || true; }
trap 'stop_nginx; stop_sticky' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

log "populating 1000 sessions (zone, small zone, recording zone, Lua dict)"
"$SSE" populate --port "$PORT" --count 1000 --prefix live- --path /rec >/dev/null
"$SSE" populate --port "$PORT" --count 1000 --prefix live- >/dev/null
"$SSE" populate --port "$PORT" --count 1000 --prefix live- --path /small >/dev/null
"$SSE" populate --port "$PORT" --count 1000 --prefix live- --path /lua >/dev/null
[[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Mcp-Session-Id: live-500' -d '{}' "$base/lua") == 200 ]] ||
    { echo "the Lua recipe did not learn its sessions" >&2; exit 1; }
[[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Mcp-Session-Id: live-500' -d '{}' "$base/mcp") == 200 ]] ||
    { echo "the module did not learn its sessions" >&2; exit 1; }

# BENCH_ONLY=population: the rows at a million sessions alone (about
# 3 minutes; population.md), after the same untimed warm-up.
if [[ ${BENCH_ONLY:-} == population ]]; then
    for path in mcp plain small; do wrk -t2 -c64 -d2s -s "$ROOT/bench/validate.lua" "$base/$path" >/dev/null 2>&1; done
    population_rows
    printf '%s\n' "${rows[@]}" | tee "$OUT/population.md"
    printf '%s\n' "${limits[@]+"${limits[@]}"}"
    exit 0
fi

# POST streams (issue 13): a tools/call answered with 64 SSE events of
# 1 KB, relayed with nginx's ids and recorded, vs plain proxying of the
# same answer; then the resume of such a stream and its zone bytes.
log "POST streams: 64 x 1 KB events per POST, recorded vs plain proxy ($RUNS runs)"
post_stream_rps() { wrk_rps -s "$ROOT/bench/post_stream.lua" "$@"; }
used_before=$(curl -s "$base/rec/status" | field bytes_used)
events_before=$(curl -s "$base/rec/status" | field post_events_recorded)
for path in mcp-sse plain-sse unbuffered-sse off-sse; do wrk -t2 -c64 -d2s -s "$ROOT/bench/post_stream.lua" "$base/$path" >/dev/null 2>&1; done
# Four sides per run, alternated: ours, plain proxy_pass (buffered: the
# goal's peer), plain unbuffered, and the module with the stream off.
ps_o="" ps_p="" ps_u="" ps_f="" ps_r="" ps_ur="" ps_fr=""
for ((run = 1; run <= RUNS; run++)); do
    read -r o p u f < <(alternated_run "post_stream_rps $base/mcp-sse" "post_stream_rps $base/plain-sse" \
        "post_stream_rps $base/unbuffered-sse" "post_stream_rps $base/off-sse")
    ps_o+="$o "; ps_p+="$p "; ps_u+="$u "; ps_f+="$f "
    ps_r+="$(ratio "$o" "$p") "; ps_ur+="$(ratio "$u" "$p") "; ps_fr+="$(ratio "$f" "$p") "
done
verdict=$(meets "$(minimum <<<"$ps_r")" 0.90 ">=")
row "POST streams: POSTs/s answered with 64 × 1 KB SSE events, recorded (stream on) vs plain proxy_pass" "$(median <<<"$ps_o")" "$(median <<<"$ps_p") (plain proxy); plain unbuffered $(median <<<"$ps_u"), ratio $(spread "$ps_ur"); stream off $(median <<<"$ps_f"), ratio $(spread "$ps_fr")" "$(spread "$ps_r")" "≥ 0.90×, every run" "$verdict"
limit "POST streams" "$verdict" "a live stream cannot wait in proxy buffers: plain proxying of the same answer with proxy_buffering off alone runs at the ratio shown beside it (about 0.67×), and the module with the stream off (validation and the answer watch) at about 0.8×; on top, each event is scanned line by line, given nginx's id, copied into our output buffers and into the zone (one slab allocation per event, one lock per body-filter call). Without the zone copy (measured by hand) the ratio was 0.56×, so recording costs about 0.13× and the relay the rest; proxy_buffering on with the relay measured no better (0.41×)."
used_after=$(curl -s "$base/rec/status" | field bytes_used)
rings=$(curl -s "$base/rec/status" | field sessions_with_ring)
events_after=$(curl -s "$base/rec/status" | field post_events_recorded)
# In the steady state every recorded session holds a full ring (64 slots).
per_event=$(awk -v u="$((used_after - used_before))" -v r="$rings" 'BEGIN { if (r == 0) print "n/a"; else printf "%.0f", u / (r * 64) }')
row "POST streams: zone bytes per recorded event (1 KB payloads, ring of 64, $rings sessions, $((events_after - events_before)) events recorded)" "$per_event" "—" "—" "—" "—"
rm_="" rr=""
for ((run = 1; run <= RUNS; run++)); do
    resumed=$("$SSE" resume --port "$PORT" --path /mcp-sse --prefix live- --events 64 --runs 50) || continue
    rm_+="$(field median_us <<<"$resumed") "
done
verdict=$(meets "$(maximum <<<"$rm_")" 1000 "<=")
row "POST stream resume: reconnect to the last of 64 replayed events, median of 50 (µs)" "$(median <<<"$rm_") (runs: $(spread "$rm_"))" "—" "—" "≤ 1000 µs median, every run" "$verdict"
limit "POST stream resume" "$verdict" "see the runs' spread."

# BENCH_ONLY=post_streams: these rows alone (a quick look while working on them).
if [[ ${BENCH_ONLY:-} == post_streams ]]; then
    printf '%s\n' "${rows[@]}" | tee "$OUT/post_streams.md"
    exit 0
fi

# One untimed round of each first: the first seconds after nginx starts
# (connections to the upstream, page faults, CPU clocks) are slower for
# whichever side happens to go first.
for path in mcp plain lua; do wrk -t2 -c64 -d2s -s "$ROOT/bench/validate.lua" "$base/$path" >/dev/null 2>&1; done

# Validation: the request a client with a session sends (a JSON-RPC POST
# naming it), proxied; three sides per run, ratios to plain proxy_pass.
log "validation overhead (1000 sessions): ours, plain proxy_pass, Lua recipe"
ours_r="" lua_r="" ahead="" os="" ps="" ls=""
for ((run = 1; run <= RUNS; run++)); do
    read -r o p l < <(alternated_run "validate_rps $base/mcp" "validate_rps $base/plain" "validate_rps $base/lua")
    os+="$o "; ps+="$p "; ls+="$l "
    ours_r+="$(ratio "$o" "$p") "; lua_r+="$(ratio "$l" "$p") "
    ahead+="$(awk -v o="$o" -v l="$l" 'BEGIN { printf "%.3f", o / l }') "
done
worst=$(minimum <<<"$ours_r")
worst_ahead=$(minimum <<<"$ahead")
v1=$(meets "$worst" 0.98 ">="); v2=$(meets "$worst_ahead" 1 ">")
verdict="$([[ $v1 == met && $v2 == met ]] && echo met || echo missed) (≥ 0.98: $v1; ahead of Lua: $v2)"
row "validation: req/s, JSON-RPC POST with a live session (1000 sessions); ratio to plain proxy_pass" \
    "$(median <<<"$os") req/s, ratio $(spread "$ours_r")" \
    "plain $(median <<<"$ps") req/s; Lua recipe $(median <<<"$ls") req/s, ratio $(spread "$lua_r"); ours / Lua $(spread "$ahead")" \
    "$(spread "$ours_r")" "≥ 0.98× plain and ahead of Lua, every run" "$verdict"
limit "validation" "$verdict" "CPU: the module adds about 1 600 instructions to a proxied request of about 33 900 (bench/callgrind.sh): the request state in the pool, the id's key (a 128-byte array zeroed per request), the lock and the index lookup, the filters; that is 4–5 % of a request, so the ratio sits near 0.95–0.96 on CPU alone (perf on the workers: the module's own code about 1.5 % of samples, the lock functions under 0.1 %), and run-to-run noise on this shared machine is larger than the 2 % the goal allows. The zone lock is held for about 400 instructions per validation, with no write but the validated counter for a session used within the last second."

# BENCH_ONLY=validation: the validation row alone (ours, plain, Lua).
if [[ ${BENCH_ONLY:-} == validation ]]; then
    printf '%s\n' "${rows[@]}" | tee "$OUT/validation.md"
    printf '%s\n' "${limits[@]+"${limits[@]}"}"
    exit 0
fi

for streams in 1000 10000; do
    sse_latency_rows "SSE $streams streams @ 5000/s" deliver "$streams" 5000 "the tail is set by scheduling on 2 cores shared by the publisher, $streams readers and both nginx workers (the load generator is in the measurement); the runs' spread shows it. Not profiled in this change (the stream code is another engineer's)."
done
max_rate_row "max sustained publish rate, 1000 streams, zero loss" deliver 4000 2000 40000 "both sides share 2 cores with the load generator; the ladder's 2 000/s rungs make one rung a large step of the ratio."

log "replay of 256 × 1 KB events ($RUNS runs)"
rm_="" rf="" rr="" replay_failed=0
for ((run = 1; run <= RUNS; run++)); do
    # A run that fails (a stalled replay) is counted, not fatal.
    if ! replay=$("$SSE" replay --port "$PORT" --events 256 --size 1024 --runs 50); then
        replay_failed=$((replay_failed + 1)); continue
    fi
    a=$(field median_us <<<"$replay"); b=$(field floor_us <<<"$replay")
    rm_+="$a "; rf+="$b "; rr+="$(ratio "$a" "$b") "
done
verdict=$(meets "$(maximum <<<"${rm_:-999999}")" 1000 "<=")
((replay_failed == 0)) || verdict="missed ($replay_failed of $RUNS runs failed)"
row "replay: reconnect to last of 256 × 1 KB events ($(field bytes <<<"$replay") bytes of SSE), median of 50 (µs)" "$(median <<<"$rm_") (runs: $(spread "$rm_"))" "$(median <<<"$rf") (bare loopback TCP, same bytes)" "$(spread "$rr")" "≤ 1000 µs, every run" "$verdict"
limit "replay" "$verdict" "see the runs' spread: the machine's load, not the ring walk, moves it."


log "shared memory per session with a full ring of 256 × 1 KB events"
ring_sessions=100
before=$(curl -s "$base/rings/status" | field bytes_used)
fill=$("$SSE" fill --port "$PORT" --count "$ring_sessions" --prefix ring- --path /rings --events 256 --size 1024)
after=$(curl -s "$base/rings/status" | field bytes_used)
per_ring=$(awk -v a="$after" -v b="$before" -v n="$ring_sessions" 'BEGIN { printf "%.0f", (a - b) / n }')
per_event=$(awk -v r="$per_ring" 'BEGIN { printf "%.0f", r / 256 }')
row "shared memory per session with a full ring (256 events of $(echo "$fill" | field payload_bytes) B, $ring_sessions sessions)" "$per_ring B ($per_event B per event)" "—" "—" "—" "—"

# The population scenarios come last: the SSE rows above ran against a
# zone holding only their own sessions, as nchan holds only its channels.
population_rows

log "sticky upstream vs round robin (its own nginx)"
sticky_rows || true
heal_rows || true
log "redis= (its own nginx and redis-server)"
redis_rows || true

alerts=$(grep -cE '\[(alert|crit|emerg)\]|exited on signal' "$OUT/nginx/logs/error.log" || true)
{
    echo "| scenario | ngx_mcp_session | peer | ratio min / median / max | goal | worst run |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "$RUNS runs per ratio, each run $SLICES alternated wrk slices (-t2 -c64 ${SLICE_SECONDS}s) per side; req/s columns are medians over the runs; goals judged on the worst run. 2 nginx workers, $(nproc) cores shared by load and server; nginx error log alerts: $alerts."
    if ((${#limits[@]} > 0)); then
        echo
        echo "What limits the missed goals:"
        echo
        printf '%s\n' "${limits[@]}"
    fi
} | tee "$OUT/results.md"

# Shared memory per idle session by id shape (its own nginx; table in build/bench/id_memory.md).
stop_nginx
log "memory per id shape"
{ echo; echo "Shared memory per idle session by id shape (bench/id_memory.sh):"; echo; "$ROOT/bench/id_memory.sh"; } | tee -a "$OUT/results.md"
