#!/usr/bin/env bash
# ngx_mcp_session: build, test and demo.
#   ./build.sh [build]   build build/ngx_mcp_session_module.so (NGINX_SRC=... for another nginx tree)
#   ./build.sh test      install what is missing, build, run unit (also under ASan/UBSan), t/ and e2e tests
#   ./build.sh demo      nginx + module in front of the reference MCP server on 127.0.0.1:${PORT:-8080}
#   ./build.sh bench     side-by-side figures (bench/run.sh), written to build/bench/results.md
#   ./build.sh fuzz [SECONDS] [TARGET...]  libFuzzer targets t/fuzz/*_fuzz.cpp, SECONDS (60) each
#   ./build.sh test-asan the t/ suites against the module built with ASan and UBSan
#   ./build.sh soak [SECONDS]  10 000 sessions of mixed traffic (bench/soak.sh), build/bench/soak.md
#   ./build.sh deb       the Debian package build/deb/libnginx-mod-http-mcp-session_*.deb
#   ./build.sh test-deb  build it, lintian, install into this machine's nginx, serve a session, purge
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$ROOT/build"
MODULE="$BUILD/ngx_mcp_session_module.so"
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"

APT_PACKAGES=(nginx nginx-dev g++ make libboost-dev libboost-test-dev nlohmann-json3-dev
              libhiredis-dev redis-server libnginx-mod-nchan libtest-base-perl libwww-perl nodejs npm curl
              ca-certificates)

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

# build_module [OBJS OUT EXTRA_CC EXTRA_LD]: the module .so; the
# arguments give the sanitizer build its own objects, file and flags.
build_module() {
    local src="${NGINX_SRC:-}"
    local objs="${1:-$BUILD/nginx-objs}" out="${2:-$MODULE}" extra_cc="${3:-}" extra_ld="${4:-}"
    if [[ -z $src ]]; then
        # Configure a private copy: Debian's tree under /usr stays untouched.
        src="$BUILD/nginx-src"
        if [[ ! -f $src/configure ]]; then
            [[ -d /usr/share/nginx/src ]] || { echo "nginx-dev is not installed (apt-get install nginx-dev)" >&2; exit 1; }
            mkdir -p "$BUILD" && cp -a /usr/share/nginx/src "$src"
        fi
    fi
    src="$(cd "$src" && pwd)"
    # nginx's auto/make names a dynamic module's objects by rewriting
    # "X.cpp", "X.cc", "X.c" and "X.S" across the whole object list after
    # prefixing it with the build directory, so a ".c" or ".S" anywhere in
    # that directory's path (~/src/github.com/..., ~/.config/...) turns into
    # object names that match no rule. The directory is handed over
    # relative to the tree, where it is only ../nginx-objs in the usual layout.
    local objs_rel
    objs_rel=$(realpath -m --relative-to="$src" "$objs")
    if [[ $objs_rel =~ \.(c|S) ]]; then
        echo "build.sh: nginx's build scripts cannot use the build directory $objs_rel (seen from $src):" \
            "a path with \".c\" or \".S\" in it breaks their object names; use NGINX_SRC or a directory without it" >&2
        exit 1
    fi
    # Reconfigure when the tree, its flags, its configure script or our config changed.
    if [[ ! -f $objs/Makefile || "$(cat "$objs/.source" 2>/dev/null)" != "$src $extra_cc $objs_rel" ||
          "$ROOT/config" -nt "$objs/Makefile" || "$src/configure" -nt "$objs/Makefile" ]]; then
        configure_args "$src"
        log "configuring against $src"
        (cd "$src" && ./configure \
            --with-cc-opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2 $extra_cc" \
            --with-ld-opt="-Wl,-z,relro -Wl,-z,now -fPIC $extra_ld" \
            "${CONFIGURE_ARGS[@]}" --add-dynamic-module="$ROOT" --builddir="$objs_rel" >"$BUILD/configure.log" 2>&1) \
            || { tail -20 "$BUILD/configure.log" >&2; exit 1; }
        echo "$src $extra_cc $objs_rel" >"$objs/.source"
    fi
    log "building the module"
    make -s -f "$objs/Makefile" -C "$src" -j"$(nproc)" modules
    # Replace, never overwrite in place: a running nginx has the old file mapped.
    mkdir -p "$(dirname "$out")"
    cp "$objs/ngx_mcp_session_module.so" "$out.tmp" && mv -f "$out.tmp" "$out"
    log "built $out"
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

# True when $1 is missing or older than any of the other files.
stale() {
    local target="$1"; shift
    [[ -f $target ]] || return 0
    local f
    for f in "$@"; do [[ $f -nt $target ]] && return 0; done
    return 1
}

# Compiles each source ($3...) whose object in $1 is stale (older than it, a
# project header or a header beside it) with the command in the array named
# $2, JOBS (nproc) at a time. Sets OBJECTS; fails when any compile failed.
compile_objects() {
    local dir="$1"; local -n compile_command="$2"; shift 2
    mkdir -p "$dir"
    local headers=("$ROOT"/include/mcp_session/*.hpp) jobs="${JOBS:-$(nproc)}" running=0 failed=0 src obj
    OBJECTS=()
    for src in "$@"; do
        obj="$dir/$(basename "${src%.cpp}").o"
        OBJECTS+=("$obj")
        stale "$obj" "$src" "${headers[@]}" "$(dirname "$src")"/*.hpp || continue
        log "compiling ${src#"$ROOT"/}"
        "${compile_command[@]}" -c "$src" -o "$obj.tmp" && mv -f "$obj.tmp" "$obj" &
        running=$((running + 1))
        if (( running >= jobs )); then wait -n || failed=1; running=$((running - 1)); fi
    done
    while (( running > 0 )); do wait -n || failed=1; running=$((running - 1)); done
    return $failed
}

# The same unit tests built with AddressSanitizer and UBSan (-O0 compiles
# twice as fast as -O1 here; objects are kept between runs). Any sanitizer
# report ends the run with a non-zero status.
build_unit_asan_tests() {
    local out="$BUILD/unit-asan"
    local compile=(g++ -std=c++17 -O0 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
                   -Wall -Wextra -Werror -I"$ROOT/include" -DBOOST_TEST_DYN_LINK)
    compile_objects "$out/obj" compile "${CORE_SOURCES[@]}" "$ROOT"/t/unit/*_test.cpp "$ROOT/t/unit/main.cpp"
    g++ -fsanitize=address,undefined "${OBJECTS[@]}" -lboost_unit_test_framework -o "$out/mcp_session_unit_tests"
}

run_unit_asan_tests() {
    log "unit tests under AddressSanitizer and UBSan (build/unit-asan)"
    build_unit_asan_tests
    local report="$BUILD/unit-asan/report.txt"
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" UBSAN_OPTIONS="print_stacktrace=1" \
        "$BUILD/unit-asan/mcp_session_unit_tests" --report_level=short --log_level=test_suite >"$report" 2>&1 \
        && UNIT_ASAN_RC=0 || UNIT_ASAN_RC=$?
    grep -E "error:|failed|passed|runtime error|Sanitizer|SUMMARY" "$report" | tail -n 20 >&2 || true
    UNIT_ASAN_PASSED=$(sed -n 's/.* \([0-9][0-9]*\) test cases\{0,1\} out of [0-9]* passed.*/\1/p' "$report" | head -1)
    UNIT_ASAN_FAILED=$(sed -n 's/.* \([0-9][0-9]*\) test cases\{0,1\} out of [0-9]* failed.*/\1/p' "$report" | head -1)
}

# The browser e2e test drives Debian's Chromium headless (playwright-core).
BROWSER_PACKAGES=(chromium)
# t/034 checks the metrics scrape with promtool (Debian's prometheus package).
METRICS_PACKAGES=(prometheus)

cmd_test() {
    local started=$SECONDS
    APT_PACKAGES+=("${DEB_PACKAGES[@]}" lintian "${BROWSER_PACKAGES[@]}" "${METRICS_PACKAGES[@]}")
    install_packages
    build_module
    UNIT_RC=1 UNIT_ASAN_RC=1 PROVE_RC=1 E2E_RC=1 DEB_RC=1 PATH_RC=1
    run_unit_tests
    run_unit_asan_tests
    run_prove
    run_e2e
    run_deb_test
    run_path_test
    local prove_failed=0; [[ $PROVE_RC -ne 0 ]] && prove_failed=1
    local passed=$(( ${UNIT_PASSED:-0} + ${UNIT_ASAN_PASSED:-0} + ${PROVE_TESTS:-0} + ${E2E_PASSED:-0} + ${DEB_PASSED:-0} + ${PATH_PASSED:-0} ))
    local failed=$(( ${UNIT_FAILED:-0} + ${UNIT_ASAN_FAILED:-0} + prove_failed + ${E2E_FAILED:-0} + ${DEB_FAILED:-0} + ${PATH_FAILED:-0} ))
    echo
    echo "unit: ${UNIT_PASSED:-0} test cases (rc $UNIT_RC); unit+asan/ubsan: ${UNIT_ASAN_PASSED:-0} test cases (rc $UNIT_ASAN_RC); t/: ${PROVE_TESTS:-0} assertions (rc $PROVE_RC); e2e: ${E2E_PASSED:-0} tests (rc $E2E_RC); deb: ${DEB_PASSED:-0} assertions (rc $DEB_RC); build path: ${PATH_PASSED:-0} assertions (rc $PATH_RC); $(( SECONDS - started ))s"
    if [[ $UNIT_RC -ne 0 || $UNIT_ASAN_RC -ne 0 || $PROVE_RC -ne 0 || $E2E_RC -ne 0 || $DEB_RC -ne 0 || $PATH_RC -ne 0 ]]; then
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

# The module built with AddressSanitizer and UBSan, run over the t/ suites.
# nginx itself is not instrumented: the ASan runtime is preloaded into it,
# and any report lands in build/asan/report.* and fails the run.
cmd_test_asan() {
    local started=$SECONDS
    install_packages
    local asan="$BUILD/asan" flags="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
    build_module "$BUILD/nginx-objs-asan" "$asan/ngx_mcp_session_module.so" "$flags" "-fsanitize=address,undefined"
    log "t/ suites with the sanitized module"
    # A report ends the worker (its error log then shows it, as the daemon's
    # stderr goes there) and so fails the suite that caused it.
    local rc=0
    (cd "$ROOT" && MCP_SESSION_MODULE="$asan/ngx_mcp_session_module.so" \
        LD_PRELOAD="$(g++ -print-file-name=libasan.so)" \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1" \
        prove -r t/ 2>&1) | tee "$asan/prove.log" || rc=$?
    echo "sanitized t/ run: rc $rc, $(( SECONDS - started ))s"
    return "$rc"
}

cmd_soak() {
    install_packages
    build_module
    "$ROOT/bench/soak.sh" "$@"
}

cmd_bench() {
    APT_PACKAGES+=(wrk libnginx-mod-nchan libnginx-mod-http-lua)
    install_packages
    build_module
    "$ROOT/bench/run.sh"
}

# ---------------------------------------------------------------- deb
DEB_PACKAGES=(debhelper dpkg-dev)

# The package's version: debian/changelog is the one place it is written.
package_version() { dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version; }

# Builds build/deb/libnginx-mod-http-mcp-session_VERSION_ARCH.deb with
# Debian's tooling (debhelper with nginx-dev's nginx_mod build system and
# dh_nginx) from a copy of the sources, so the build leaves the tree clean.
build_deb() {
    local version; version=$(package_version)
    local out="$BUILD/deb" staging="$BUILD/deb/src"
    # Debian's nginx_mod build system gives nginx an absolute build
    # directory, which a ".c" or ".S" in the path breaks (see build_module):
    # such a checkout builds its package in a directory of its own.
    [[ $BUILD =~ \.(c|S) ]] && staging=$(mktemp -d /tmp/ngx-mcp-session-deb-XXXXXX)
    local stage="$staging/ngx-mcp-session-$version"
    rm -rf "$out/src" && mkdir -p "$out" "$stage"
    cp -a "$ROOT/config" "$ROOT/ngx_mcp_session_module.cpp" "$ROOT/ngx_mcp_session.map" "$ROOT/README.md" \
        "$ROOT/include" "$ROOT/src" "$ROOT/debian" "$stage/"
    log "building the Debian package $version (dpkg-buildpackage)"
    (cd "$stage" && DEB_BUILD_OPTIONS="noddebs parallel=$(nproc)" dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1) \
        || { tail -30 "$out/build.log" >&2; [[ $staging == "$out/src" ]] || rm -rf "$staging"; return 1; }
    rm -f "$out"/*.deb && mv "$staging"/*.deb "$out/"
    [[ $staging == "$out/src" ]] || rm -rf "$staging"
    DEB_FILE=$(ls "$out"/libnginx-mod-http-mcp-session_*.deb)
    log "built $DEB_FILE"
}

cmd_deb() {
    APT_PACKAGES+=("${DEB_PACKAGES[@]}")
    install_packages
    build_deb
}

# Builds the package, checks it with lintian, installs it into this
# machine's nginx, serves a session through /etc/nginx and purges it
# (t/deb/package.pl). Sets DEB_RC and DEB_PASSED/DEB_FAILED.
run_deb_test() {
    log "Debian package: build, lintian, install, serve, purge"
    DEB_RC=1
    build_deb || return 0
    (cd "$ROOT" && DEB_FILE="$DEB_FILE" prove -v t/deb/package.pl 2>&1) | tee "$BUILD/deb/test.log" && DEB_RC=0 || DEB_RC=$?
    DEB_PASSED=$(grep -c '^ok ' "$BUILD/deb/test.log" || true)
    DEB_FAILED=$(grep -c '^not ok ' "$BUILD/deb/test.log" || true)
}

# A checkout under a path with ".c" in it (~/src/github.com/...) builds:
# the module is built again from a copy of nginx's tree in such a
# directory and loaded by nginx -t, and a build directory nginx's scripts
# cannot use is refused before anything is configured. Sets PATH_RC and
# PATH_PASSED/PATH_FAILED.
run_path_test() {
    log "building under a path with \".c\" in it"
    PATH_RC=1 PATH_PASSED=0 PATH_FAILED=0
    local dir="$BUILD/path.check"
    rm -rf "$dir" && mkdir -p "$dir" && cp -a /usr/share/nginx/src "$dir/nginx-src"
    cat >"$dir/nginx.conf" <<CONF
load_module $dir/module.so;
error_log $dir/error.log;
pid $dir/nginx.pid;
events {}
http { mcp_session_zone zone=check:1m; server { listen 127.0.0.1:1; location / { mcp_session zone=check; } } }
CONF
    if (NGINX_SRC="$dir/nginx-src" build_module "$dir/nginx-objs" "$dir/module.so") >"$dir/build.log" 2>&1 &&
        /usr/sbin/nginx -t -p "$dir/" -c "$dir/nginx.conf" >>"$dir/build.log" 2>&1; then
        echo "ok 1 - built and loaded from $dir"; PATH_PASSED=$((PATH_PASSED + 1))
    else
        tail -5 "$dir/build.log" >&2; echo "not ok 1 - built and loaded from $dir"; PATH_FAILED=$((PATH_FAILED + 1))
    fi
    if ! (build_module "$dir/objs.cc" "$dir/refused.so") >"$dir/refused.log" 2>&1 &&
        grep -q 'breaks their object names' "$dir/refused.log" && [[ ! -e $dir/objs.cc/Makefile ]]; then
        echo "ok 2 - a build directory with \".c\" in its relative path is refused"; PATH_PASSED=$((PATH_PASSED + 1))
    else
        cat "$dir/refused.log" >&2; echo "not ok 2 - a build directory with \".c\" in its relative path is refused"
        PATH_FAILED=$((PATH_FAILED + 1))
    fi
    [[ $PATH_FAILED -eq 0 ]] && PATH_RC=0
    return 0
}

cmd_test_deb() {
    APT_PACKAGES+=("${DEB_PACKAGES[@]}" lintian)
    install_packages
    run_deb_test
    [[ $DEB_RC -eq 0 ]]
}

# ---------------------------------------------------------------- fuzz
FUZZ_CXXFLAGS=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I"$ROOT/include")

# Instruments the core once, then links each t/fuzz/<name>_fuzz.cpp with it.
build_fuzz_targets() {
    local out="$BUILD/fuzz" compile=(clang++ "${FUZZ_CXXFLAGS[@]}") name
    compile_objects "$out/obj" compile "${CORE_SOURCES[@]}"
    local core=("${OBJECTS[@]}") targets=()
    for name in "$@"; do targets+=("$ROOT/t/fuzz/${name}_fuzz.cpp"); done
    compile_objects "$out/obj" compile "${targets[@]}"
    for name in "$@"; do
        if stale "$out/$name" "$out/obj/${name}_fuzz.o" "${core[@]}"; then
            clang++ "${FUZZ_CXXFLAGS[@]}" "$out/obj/${name}_fuzz.o" "${core[@]}" -o "$out/$name"
        fi
    done
}

# Runs one target for $2 seconds on a copy of its seed corpus (what it
# learns stays in build/fuzz/corpus). Sets FUZZ_EXECS and FUZZ_FOUND.
run_fuzz_target() {
    local name="$1" seconds="$2"
    local out="$BUILD/fuzz" corpus="$BUILD/fuzz/corpus/$name" seeds="$ROOT/t/fuzz/corpus/$name"
    mkdir -p "$corpus"
    if [[ -d $seeds ]] && compgen -G "$seeds/*" >/dev/null; then cp -n "$seeds"/* "$corpus/"; fi
    local rc=0
    # A small quarantine: ASan's default 256 MB turns every allocation into
    # fresh pages, and page faults then cost most of the time in a VM.
    ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}" UBSAN_OPTIONS="print_stacktrace=1" "$out/$name" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/$name-" "$corpus" >"$out/$name.log" 2>&1 || rc=$?
    FUZZ_EXECS=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$out/$name.log" | tail -1)
    [[ -n $FUZZ_EXECS ]] || FUZZ_EXECS=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$out/$name.log" | tail -1)
    FUZZ_FOUND=""
    if [[ $rc -ne 0 ]]; then
        FUZZ_FOUND=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$out/$name.log" | tail -1)
        [[ -n $FUZZ_FOUND ]] || FUZZ_FOUND="exit status $rc"
        grep -E "invariant violated|ERROR: |runtime error|SUMMARY" "$out/$name.log" | head -n 5 >&2 || true
    fi
}

cmd_fuzz() {
    local seconds="${1:-60}"
    [[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 fuzz [SECONDS] [TARGET...]" >&2; exit 2; }
    local names=("${@:2}")
    if [[ ${#names[@]} -eq 0 ]]; then
        local src
        for src in "$ROOT"/t/fuzz/*_fuzz.cpp; do
            [[ -f $src ]] && names+=("$(basename "${src%_fuzz.cpp}")")
        done
    fi
    [[ ${#names[@]} -gt 0 ]] || { echo "no fuzz targets in t/fuzz/" >&2; exit 1; }
    APT_PACKAGES+=(clang libclang-rt-dev)
    install_packages
    build_fuzz_targets "${names[@]}"
    local started=$SECONDS name crashed=0 results=()
    for name in "${names[@]}"; do
        log "fuzzing $name for ${seconds}s"
        run_fuzz_target "$name" "$seconds"
        local files; files=$(find "$BUILD/fuzz/corpus/$name" -type f | wc -l)
        if [[ -n $FUZZ_FOUND ]]; then
            crashed=$((crashed + 1))
            results+=("$(printf '%-18s %12s execs  corpus %5s  FOUND: %s' "$name" "${FUZZ_EXECS:-?}" "$files" "$FUZZ_FOUND")")
        else
            results+=("$(printf '%-18s %12s execs  corpus %5s  nothing found' "$name" "${FUZZ_EXECS:-?}" "$files")")
        fi
    done
    echo
    printf '%s\n' "${results[@]}"
    echo "fuzz: ${#names[@]} targets x ${seconds}s, $crashed found something; $(( SECONDS - started ))s (logs in build/fuzz/)"
    [[ $crashed -eq 0 ]]
}

case "${1:-build}" in
    build) build_module ;;
    bench) cmd_bench ;;
    deb) cmd_deb ;;
    test-deb) cmd_test_deb ;;
    test-path) run_path_test; [[ $PATH_RC -eq 0 ]] ;;
    test) cmd_test ;;
    demo) cmd_demo ;;
    fuzz) cmd_fuzz "${@:2}" ;;
    test-asan) cmd_test_asan ;;
    soak) cmd_soak "${@:2}" ;;
    *) echo "usage: $0 [build|test|test-asan|test-deb|deb|demo|bench|soak [SECONDS]|fuzz [SECONDS] [TARGET...]]" >&2; exit 2 ;;
esac
