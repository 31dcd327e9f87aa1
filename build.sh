#!/usr/bin/env bash
# ngx_mcp_session: build, test and demo.
#   ./build.sh [build]   build build/ngx_mcp_session_module.so (NGINX_SRC=... for another nginx tree)
#   ./build.sh test      install what is missing, build, run unit, t/ and e2e tests
#   ./build.sh demo      nginx + module in front of the reference MCP server on 127.0.0.1:${PORT:-8080}
#   ./build.sh bench     side-by-side figures (bench/run.sh), written to build/bench/results.md
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$ROOT/build"
MODULE="$BUILD/ngx_mcp_session_module.so"
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"

APT_PACKAGES=(nginx nginx-dev g++ make libboost-dev libboost-test-dev nlohmann-json3-dev
              libtest-base-perl libwww-perl nodejs npm curl ca-certificates)

log() { printf '==> %s\n' "$*" >&2; }

# ---------------------------------------------------------------- setup
install_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    # Node and npm may come from outside Debian (as on the CI image): take what works.
    if command -v node >/dev/null && command -v npm >/dev/null; then
        local kept=()
        for pkg in "${missing[@]}"; do [[ $pkg == nodejs || $pkg == npm ]] || kept+=("$pkg"); done
        missing=("${kept[@]+"${kept[@]}"}")
    fi
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing: ${missing[*]}"
    local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
}

install_node_packages() {
    local dir="$BUILD/e2e"
    mkdir -p "$dir"
    cp "$ROOT/t/e2e/package.json" "$ROOT/t/e2e/package-lock.json" "$dir/"
    if ! cmp -s "$ROOT/t/e2e/package-lock.json" "$dir/node_modules/.installed-lock.json" 2>/dev/null; then
        log "npm ci (into build/e2e)"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$ROOT/t/e2e/package-lock.json" "$dir/node_modules/.installed-lock.json"
    fi
}

# ---------------------------------------------------------------- build
configure_args() {
    # Debian's tree records its flags in conf_flags; any other configured
    # tree records how it was configured in objs/ngx_auto_config.h.
    local src="$1"
    if [[ -f "$src/conf_flags" ]]; then
        # shellcheck disable=SC1091
        . "$src/conf_flags"
        CONFIGURE_ARGS=("${NGX_CONF_FLAGS[@]}")
    elif [[ -n "${NGINX_CONFIGURE_ARGS:-}" ]]; then
        eval "CONFIGURE_ARGS=($NGINX_CONFIGURE_ARGS)"
    elif [[ -f "$src/objs/ngx_auto_config.h" ]]; then
        local recorded
        recorded=$(sed -n 's/^#define NGX_CONFIGURE "\(.*\)"$/\1/p' "$src/objs/ngx_auto_config.h")
        eval "CONFIGURE_ARGS=($recorded)"
        local kept=()
        for a in "${CONFIGURE_ARGS[@]}"; do [[ $a == --add-dynamic-module=* || $a == --builddir=* ]] || kept+=("$a"); done
        CONFIGURE_ARGS=("${kept[@]+"${kept[@]}"}")
    else
        CONFIGURE_ARGS=(--with-compat)
    fi
}

build_module() {
    local src="${NGINX_SRC:-}"
    local objs="$BUILD/nginx-objs"
    if [[ -z $src ]]; then
        # Configure a private copy: Debian's tree under /usr stays untouched.
        src="$BUILD/nginx-src"
        if [[ ! -f $src/configure ]]; then
            [[ -d /usr/share/nginx/src ]] || { echo "nginx-dev is not installed (apt-get install nginx-dev)" >&2; exit 1; }
            mkdir -p "$BUILD" && cp -a /usr/share/nginx/src "$src"
        fi
    fi
    src="$(cd "$src" && pwd)"
    # Reconfigure when the tree, its configure script or our config changed.
    if [[ ! -f $objs/Makefile || "$(cat "$objs/.source" 2>/dev/null)" != "$src" ||
          "$ROOT/config" -nt "$objs/Makefile" || "$src/configure" -nt "$objs/Makefile" ]]; then
        configure_args "$src"
        log "configuring against $src"
        (cd "$src" && ./configure \
            --with-cc-opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2" \
            --with-ld-opt="-Wl,-z,relro -Wl,-z,now -fPIC" \
            "${CONFIGURE_ARGS[@]}" --add-dynamic-module="$ROOT" --builddir="$objs" >"$BUILD/configure.log" 2>&1) \
            || { tail -20 "$BUILD/configure.log" >&2; exit 1; }
        echo "$src" >"$objs/.source"
    fi
    log "building the module"
    make -s -f "$objs/Makefile" -C "$src" -j"$(nproc)" modules
    # Replace, never overwrite in place: a running nginx has the old file mapped.
    cp "$objs/ngx_mcp_session_module.so" "$MODULE.tmp" && mv -f "$MODULE.tmp" "$MODULE"
    log "built $MODULE"
}

# ---------------------------------------------------------------- tests
CORE_SOURCES=("$ROOT"/src/core/*.cpp)

build_unit_tests() {
    local out="$BUILD/unit"
    mkdir -p "$out"
    g++ -std=c++17 -O1 -g -Wall -Wextra -Werror -I"$ROOT/include" -DBOOST_TEST_DYN_LINK \
        "${CORE_SOURCES[@]}" "$ROOT"/t/unit/*_test.cpp "$ROOT/t/unit/main.cpp" \
        -lboost_unit_test_framework -o "$out/mcp_session_unit_tests"
}

run_unit_tests() {
    build_unit_tests
    log "unit tests (Boost.Test)"
    "$BUILD/unit/mcp_session_unit_tests" --report_level=short --log_level=test_suite >"$BUILD/unit/report.txt" 2>&1 \
        && UNIT_RC=0 || UNIT_RC=$?
    grep -E "error|failed|passed" "$BUILD/unit/report.txt" | tail -n 20 >&2 || true
    UNIT_PASSED=$(sed -n 's/.* \([0-9][0-9]*\) test cases\{0,1\} out of [0-9]* passed.*/\1/p' "$BUILD/unit/report.txt" | head -1)
    UNIT_FAILED=$(sed -n 's/.* \([0-9][0-9]*\) test cases\{0,1\} out of [0-9]* failed.*/\1/p' "$BUILD/unit/report.txt" | head -1)
}

run_prove() {
    log "t/ suites (prove)"
    (cd "$ROOT" && MCP_SESSION_MODULE="$MODULE" prove -r t/ 2>&1) | tee "$BUILD/prove.log" && PROVE_RC=0 || PROVE_RC=$?
    PROVE_TESTS=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$BUILD/prove.log" | tail -1)
}

run_e2e() {
    log "e2e (official TypeScript SDK through nginx)"
    install_node_packages
    cp "$ROOT"/t/e2e/*.mjs "$BUILD/e2e/"
    (cd "$BUILD/e2e" && MCP_SESSION_MODULE="$MODULE" NGINX_BIN="$NGINX_BIN" node --test --test-reporter=spec ./*.test.mjs 2>&1) \
        | tee "$BUILD/e2e.log" && E2E_RC=0 || E2E_RC=$?
    E2E_PASSED=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$BUILD/e2e.log" | tail -1)
    E2E_FAILED=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$BUILD/e2e.log" | tail -1)
}

cmd_test() {
    local started=$SECONDS
    install_packages
    build_module
    UNIT_RC=1 PROVE_RC=1 E2E_RC=1
    run_unit_tests
    run_prove
    run_e2e
    local prove_failed=0; [[ $PROVE_RC -ne 0 ]] && prove_failed=1
    local passed=$(( ${UNIT_PASSED:-0} + ${PROVE_TESTS:-0} + ${E2E_PASSED:-0} ))
    local failed=$(( ${UNIT_FAILED:-0} + prove_failed + ${E2E_FAILED:-0} ))
    echo
    echo "unit: ${UNIT_PASSED:-0} test cases (rc $UNIT_RC); t/: ${PROVE_TESTS:-0} assertions (rc $PROVE_RC); e2e: ${E2E_PASSED:-0} tests (rc $E2E_RC); $(( SECONDS - started ))s"
    if [[ $UNIT_RC -ne 0 || $PROVE_RC -ne 0 || $E2E_RC -ne 0 ]]; then
        [[ $failed -eq 0 ]] && failed=1
        echo "$passed passed, $failed failed"
        exit 1
    fi
    echo "$passed passed, 0 failed"
}

# ---------------------------------------------------------------- demo
cmd_demo() {
    local port="${PORT:-8080}" backend_port="${BACKEND_PORT:-3001}"
    local prefix="$BUILD/demo"
    install_packages
    build_module
    install_node_packages
    mkdir -p "$prefix/conf" "$prefix/logs"
    local user_line=""; [[ $(id -u) -eq 0 ]] && user_line="user root;"
    cat >"$prefix/conf/nginx.conf" <<CONF
load_module $MODULE;
$user_line
daemon off;
worker_processes 2;
worker_shutdown_timeout 5s;  # open SSE streams must not hold up Ctrl-C
error_log stderr info;
pid $prefix/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $prefix/tmp_body;
    proxy_temp_path $prefix/tmp_proxy;
    mcp_session_zone zone=mcp:16m idle_timeout=30m max_lifetime=4h;
    server {
        listen 127.0.0.1:$port;
        location /mcp {
            mcp_session zone=mcp;
            mcp_session_stream on;
            add_header X-Mcp-Session-Status \$mcp_session_status always;
            proxy_pass http://127.0.0.1:$backend_port;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }
        location = /mcp/publish {
            mcp_session_publish zone=mcp;
            allow 127.0.0.1;
            deny all;
        }
    }
}
CONF
    "$NGINX_BIN" -t -p "$prefix" -c conf/nginx.conf -q
    DEMO_BACKEND_PID="" DEMO_NGINX_PID=""
    trap stop_demo INT TERM EXIT
    PORT="$backend_port" node "$BUILD/e2e/node_modules/@modelcontextprotocol/server-everything/dist/index.js" \
        streamableHttp &
    DEMO_BACKEND_PID=$!
    wait_for_port "$backend_port" || { echo "the MCP backend did not start" >&2; exit 1; }
    "$NGINX_BIN" -p "$prefix" -c conf/nginx.conf &
    DEMO_NGINX_PID=$!
    wait_for_port "$port" || { echo "nginx did not start" >&2; exit 1; }
    cat <<TXT

  MCP endpoint:  http://127.0.0.1:$port/mcp   (nginx + ngx_mcp_session, 2 workers)
  Backend:       @modelcontextprotocol/server-everything on 127.0.0.1:$backend_port
  Try:           curl -si http://127.0.0.1:$port/mcp -H 'Mcp-Session-Id: no-such-session' -d '{}'
  Ctrl-C stops both.

TXT
    # Returns when either process ends or a signal arrives (the trap then stops both).
    wait -n "$DEMO_BACKEND_PID" "$DEMO_NGINX_PID" || true
}

# Background jobs of a script ignore SIGINT, so Ctrl-C reaches only this
# shell: stop the children explicitly (nginx gracefully) and wait for them.
stop_demo() {
    trap - INT TERM EXIT
    [[ -n ${DEMO_NGINX_PID:-} ]] && kill -QUIT "$DEMO_NGINX_PID" 2>/dev/null  # graceful
    [[ -n ${DEMO_BACKEND_PID:-} ]] && kill -TERM "$DEMO_BACKEND_PID" 2>/dev/null
    wait 2>/dev/null || true
    echo "demo stopped" >&2
}

# Polls until something accepts on 127.0.0.1:$1 (deadline 30 s).
wait_for_port() {
    local deadline=$((SECONDS + 30))
    while (( SECONDS < deadline )); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

cmd_bench() {
    APT_PACKAGES+=(wrk libnginx-mod-nchan)
    install_packages
    build_module
    "$ROOT/bench/run.sh"
}

case "${1:-build}" in
    build) build_module ;;
    bench) cmd_bench ;;
    test) cmd_test ;;
    demo) cmd_demo ;;
    *) echo "usage: $0 [build|test|demo|bench]" >&2; exit 2 ;;
esac
