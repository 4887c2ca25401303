#!/usr/bin/env bash
# scripts/proxy-test.sh: a throwaway loopback HTTP proxy (tinyproxy) for the proxy tests.
#
#   proxy-test.sh start DIR [USER:PASSWORD]   a free port, tinyproxy started, DIR/env
#   proxy-test.sh stop DIR                    stops it; succeeds when nothing runs
#
# With USER:PASSWORD the proxy demands those Basic credentials (407 without them). It
# forwards plain requests in absolute form and opens CONNECT tunnels to any port, and
# logs every request to DIR/tinyproxy.log ("Request (file descriptor N): GET http://...",
# "... CONNECT host:port HTTP/1.1"), which the tests count. Only 127.0.0.1 is used.
#
# DIR/env: PROXY_PORT=..., PROXY_LOG=..., PROXY_AUTH=USER:PASSWORD (or empty).
# Exit status: 0 ok, 1 error, 2 usage, 77 tinyproxy is not installed (ctest: skipped).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

usage() {
    echo "usage: $0 start DIR [USER:PASSWORD] | stop DIR" >&2
    exit 2
}
[[ $# -ge 2 && -n "$2" ]] || usage
cmd=$1
dir=$2
auth=${3:-}

pid_alive() {
    [[ -f "$dir/tinyproxy.pid" ]] || return 1
    local pid
    pid=$(tr -dc 0-9 <"$dir/tinyproxy.pid")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

do_stop() {
    local i pid
    pid_alive || { rm -f "$dir/tinyproxy.pid"; return 0; }
    pid=$(tr -dc 0-9 <"$dir/tinyproxy.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/tinyproxy.pid"
}

case "$cmd" in
stop)
    [[ -d "$dir" ]] && do_stop
    exit 0
    ;;
start) ;;
*) usage ;;
esac

command -v tinyproxy >/dev/null 2>&1 || {
    echo "proxy-test: tinyproxy is not installed (Debian: apt-get install tinyproxy-bin," \
        "or scripts/install-deps.sh); skipping the proxy tests" >&2
    exit 77
}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
do_stop
rm -f "$dir/env" "$dir/tinyproxy.log"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
    echo "Port $port"
    echo "Listen 127.0.0.1"
    echo "Timeout 30"
    echo "MaxClients 200"
    echo "Allow 127.0.0.1"
    echo "LogFile \"$dir/tinyproxy.log\""
    echo "LogLevel Info"
    echo "PidFile \"$dir/tinyproxy.pid\""
    echo "DisableViaHeader Yes"
    if [[ -n "$auth" ]]; then
        echo "BasicAuth ${auth%%:*} ${auth#*:}"
    fi
} >"$dir/tinyproxy.conf"
# As root tinyproxy keeps root (no User line): it only listens on loopback.
tinyproxy -c "$dir/tinyproxy.conf" || {
    echo "proxy-test: tinyproxy failed to start" >&2
    exit 1
}
for ((i = 0; i < 50; i++)); do
    if pid_alive && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        printf 'PROXY_PORT=%s\nPROXY_LOG=%s\nPROXY_AUTH=%s\n' "$port" "$dir/tinyproxy.log" \
            "$auth" >"$dir/env"
        exit 0
    fi
    sleep 0.1
done
echo "proxy-test: tinyproxy did not accept on 127.0.0.1:$port within 5 s" >&2
do_stop
exit 1
