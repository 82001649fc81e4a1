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
    server | worker | both)
        # Fail fast, with one clear line, on bad settings or unreachable NATS/Redis.
        "$PYTHON" -m src check >/dev/null || exit $?
        ;;
esac

case "$RUN_MODE" in
    server) server ;;
    worker) worker ;;
    both)
        server &
        server_pid=$!
        worker &
        worker_pid=$!
        # Exactly one SIGTERM each: a second one can deadlock taskiq's process manager, whose
        # signal handler is not re-entrant.
        stopping=""
        stop() {
            [ -z "$stopping" ] || return 0
            stopping=1
            echo "docker-entrypoint.sh: stopping server ($server_pid) and worker ($worker_pid)" >&2
            kill -TERM "$server_pid" "$worker_pid" 2>/dev/null || true
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
        stop
        reap "$server_pid"; server_status=$?
        reap "$worker_pid"; worker_status=$?
        status=$first_status
        [ "$server_status" -gt "$status" ] && status=$server_status
        [ "$worker_status" -gt "$status" ] && status=$worker_status
        exit "$status"
        ;;
    *)
        echo "docker-entrypoint.sh: unknown RUN_MODE '$RUN_MODE' (use server, worker or both)" >&2
        exit 64
        ;;
esac
