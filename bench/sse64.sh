#!/usr/bin/env bash
# bench/sse64.sh FILE: writes the backend's answer to a tools/call used by
# the POST-stream benches (bench/run.sh, bench/callgrind.sh): 63 progress
# notifications of about 1 KB, then the result (a JSON-RPC response,
# which ends the stream).
set -euo pipefail
{
    pad=$(printf 'x%.0s' $(seq 1 960))
    for i in $(seq 1 63); do
        printf 'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":%d,"message":"%s"}}\n\n' "$i" "$pad"
    done
    printf 'data: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"%s"}]}}\n\n' "$pad"
} >"$1"
