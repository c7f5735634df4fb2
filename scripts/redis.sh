#!/usr/bin/env bash
# The private Redis server of the test suite: `scripts/redis.sh start` installs Debian's
# redis-server if it is missing (as root: apt-get update, then apt-get install), starts it on
# 127.0.0.1 on a free port with no persistence, and writes its URL to .redis-test/url;
# `scripts/redis.sh stop` stops it and removes .redis-test. `make test` does both around pytest,
# which reads the URL from TEST_REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$PWD/.redis-test"
PY="${PYTHON:-python3}"

install_redis() {
    command -v redis-server >/dev/null && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "redis.sh: redis-server is missing and cannot be installed here (needs root and" \
             "apt-get); the tests that need Redis will be skipped" >&2
        return 1
    fi
    echo "redis.sh: installing redis-server (Debian package)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}

running() {
    [ -f "$DIR/redis.pid" ] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null
}

start() {
    if running; then
        cat "$DIR/url"
        return 0
    fi
    install_redis || return 0
    mkdir -p "$DIR"
    port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # --save "" and --appendonly no: nothing is ever written to disk.
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize yes \
        --dir "$DIR" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
    for _ in $(seq 1 100); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; then
            echo "redis://127.0.0.1:$port/0" | tee "$DIR/url"
            return 0
        fi
        sleep 0.1
    done
    echo "redis.sh: redis-server did not start; see $DIR/redis.log" >&2
    return 1
}

stop() {
    if running; then
        pid="$(cat "$DIR/redis.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: scripts/redis.sh start|stop" >&2; exit 2 ;;
esac
