#!/usr/bin/env bash
# One image, three roles: RUN_MODE=server (default) | worker | both.
#   server: the FastAPI app under uvicorn on $HOST:$PORT
#   worker: `taskiq worker` with $TASKJET_WORKER_PROCESSES processes
#   both:   server and worker side by side; SIGTERM/SIGINT stops both cleanly, and if
#           either one dies the other is stopped too, so the container restarts as a whole.
set -eu

RUN_MODE="${RUN_MODE:-server}"
HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8000}"
PYTHON="${PYTHON:-python}"
WORKERS="${TASKJET_WORKER_PROCESSES:-1}"
MODULES="${TASKJET_WORKER_MODULES:-src.tasks.example}"
WORKER_ARGS="${TASKJET_WORKER_ARGS:-}"
SERVER_ARGS="${SERVER_ARGS:-}"
CONCURRENCY="${TASKJET_WORKER_CONCURRENCY:-100}"
LOG_LEVEL="${TASKJET_LOG_LEVEL:-INFO}"
GRACE="${TASKJET_SHUTDOWN_GRACE_S:-30}"

server() {
    # shellcheck disable=SC2086
    exec "$PYTHON" -m uvicorn src.api.app:create_app --factory \
        --host "$HOST" --port "$PORT" --no-access-log $SERVER_ARGS
}

worker() {
    # shellcheck disable=SC2086
    exec "$PYTHON" -m taskiq worker src.tasks.broker:broker $MODULES \
        --workers "$WORKERS" --max-async-tasks "$CONCURRENCY" --log-level "$LOG_LEVEL" \
        --wait-tasks-timeout "$GRACE" --hardkill-count 0 $WORKER_ARGS
}

case "$RUN_MODE" in
    # Fail fast, with one clear line, on bad settings, missing API keys or unreachable NATS/Redis.
    server | both) "$PYTHON" -m src check --server >/dev/null || exit $? ;;
    worker) "$PYTHON" -m src check >/dev/null || exit $? ;;
esac

# Child pids of $1, from /proc (slim images have no procps).
children_of() {
    local stat rest
    for stat in /proc/[0-9]*/stat; do
        read -r rest <"$stat" 2>/dev/null || continue
        rest="${rest##*) }"              # drop "pid (comm) ", comm may hold spaces
        set -- "$1" $rest                # $2 state, $3 ppid
        [ "${3:-}" = "$1" ] && { stat="${stat#/proc/}"; echo "${stat%/stat}"; }
    done
}

# Runs the given roles as children and stops them together. The first SIGTERM/SIGINT is passed
# on once to each (a second one can deadlock taskiq's process manager, whose signal handler is not
# re-entrant); a second one goes straight to the worker processes under that manager, which then
# cancel what still runs and hand it back to the queue. If either role dies, the other is stopped
# too, so the container restarts as a whole.
supervise() {
    local pids=() role worker_pid=""
    for role in "$@"; do
        "$role" &
        pids+=("$!")
        [ "$role" != worker ] || worker_pid=$!
    done
    stops=0
    stop() {
        stops=$((stops + 1))
        if [ "$stops" -eq 1 ]; then
            echo "docker-entrypoint.sh: stopping ${pids[*]}" >&2
            kill -TERM "${pids[@]}" 2>/dev/null || true
        elif [ "$stops" -eq 2 ] && [ -n "$worker_pid" ]; then
            echo "docker-entrypoint.sh: second signal: cancelling running tasks" >&2
            local child
            for child in $(children_of "$worker_pid"); do kill -INT "$child" 2>/dev/null || true; done
        fi
    }
    # Reap a child, riding out signals that interrupt `wait` while it still runs. A child
    # that ends on the SIGTERM we sent it (143: uvicorn re-raises it) stopped cleanly.
    reap() {
        local status=0
        while kill -0 "$1" 2>/dev/null; do wait "$1" && status=0 || status=$?; done
        [ "$status" -eq 143 ] && status=0
        return "$status"
    }
    trap stop TERM INT
    set +e
    exited=""
    wait -n -p exited   # returns when either child exits, or a signal arrives
    first_status=$?
    exited="${exited:-}"
    [ -n "$exited" ] || first_status=0
    [ -z "$exited" ] || echo "docker-entrypoint.sh: pid $exited exited ($first_status); stopping" >&2
    [ "$stops" -gt 0 ] || stop
    local status=$first_status child_status pid
    for pid in "${pids[@]}"; do
        reap "$pid"; child_status=$?
        [ "$child_status" -gt "$status" ] && status=$child_status
    done
    exit "$status"
}

case "$RUN_MODE" in
    server) server ;;
    worker) supervise worker ;;
    both) supervise server worker ;;
    *)
        echo "docker-entrypoint.sh: unknown RUN_MODE '$RUN_MODE' (use server, worker or both)" >&2
        exit 64
        ;;
esac
