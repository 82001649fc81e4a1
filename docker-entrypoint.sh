#!/usr/bin/env bash
# One image, three roles: RUN_MODE=server (default) | worker | both.
#   server: the FastAPI app under uvicorn on $HOST:$PORT
#   worker: `taskjet worker` (taskiq's worker loop under a lighter manager, `src/launcher/`)
#           with $TASKJET_WORKER_PROCESSES processes
#   both:   server and worker side by side; SIGTERM/SIGINT stops the worker, then the server
#           (the API answers while the worker hands its tasks back), and if either one dies the
#           other is stopped too, so the container restarts as a whole.
set -eu

RUN_MODE="${RUN_MODE:-server}"
HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8000}"
PYTHON="${PYTHON:-python}"

# The settings read below, resolved as taskjet resolves them: the environment, then the .env
# file (TASKJET_ENV_FILE), then the TASKJET_PROFILE defaults. Bad settings stop here, in one line.
resolved="$("$PYTHON" -m src config-env)" || exit $?
eval "$resolved"
WORKERS="${TASKJET_WORKER_PROCESSES:-1}"
MODULES="${TASKJET_WORKER_MODULES:-src.tasks.example}"
WORKER_ARGS="${TASKJET_WORKER_ARGS:-}"
SERVER_ARGS="${SERVER_ARGS:-}"
CONCURRENCY="${TASKJET_WORKER_CONCURRENCY:-100}"
LOG_LEVEL="${TASKJET_LOG_LEVEL:-INFO}"
GRACE="${TASKJET_SHUTDOWN_GRACE_S:-30}"

# One line of this script's own on stderr: a JSON object, like every other line, when the
# settings ask for JSON logs.
say() {
    if [ "${TASKJET_LOG_FORMAT:-text}" = json ]; then
        local text="${2//\\/\\\\}"
        text="${text//\"/\\\"}"
        printf '{"time":"%s","level":"%s","logger":"docker-entrypoint.sh","message":"%s"}\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%S.000+00:00)" "$1" "$text" >&2
    else
        echo "docker-entrypoint.sh: $2" >&2
    fi
}

# A role started by `supervise` gets SIGTERM when this script dies, even by SIGKILL
# (PR_SET_PDEATHSIG, kept across exec), so no server or worker outlives its supervisor.
launch() {
    [ -n "${SUPERVISOR:-}" ] || exec "$@"
    exec "$PYTHON" -c '
import ctypes, os, signal, sys
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(sys.argv[1]):
        sys.exit(0)  # the supervisor died before the line above
os.execvp(sys.argv[2], sys.argv[2:])' "$SUPERVISOR" "$@"
}

server() {
    # Against slow and careless clients: header and body deadlines and a header size cap (the
    # protocol class reads TASKJET_HTTP_HEADER_TIMEOUT_S, _BODY_TIMEOUT_S, _MAX_HEADER_BYTES),
    # idle keep-alive connections closed, 503 beyond a number of connections, and a bounded
    # wait for open requests on SIGTERM. Defaults as in src/config.py.
    # shellcheck disable=SC2086
    launch "$PYTHON" -m uvicorn src.api.app:create_app --factory \
        --host "$HOST" --port "$PORT" --no-access-log \
        --http src.api.http_guard:GuardedHttpToolsProtocol \
        --timeout-keep-alive "${TASKJET_HTTP_KEEP_ALIVE_S:-5}" \
        --limit-concurrency "${TASKJET_HTTP_MAX_CONCURRENCY:-1000}" \
        --timeout-graceful-shutdown "${TASKJET_HTTP_SHUTDOWN_TIMEOUT_S:-10}" \
        $SERVER_ARGS
}

worker() {
    # shellcheck disable=SC2086
    launch "$PYTHON" -m src.launcher src.tasks.broker:broker $MODULES \
        --receiver src.tasks.broker:TaskjetReceiver --workers "$WORKERS" --max-async-tasks "$CONCURRENCY" --log-level "$LOG_LEVEL" \
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

# Runs the given roles as children and stops them together, one after the other in the order
# given: each gets one SIGTERM once the one before it has exited, so in `both` the worker hands
# its tasks back while the API still answers. The first SIGTERM/SIGINT starts that, and so does
# either role dying, so the container restarts as a whole. Each role gets SIGTERM once only: a
# second SIGTERM/SIGINT goes straight to the worker processes under the worker's manager (a
# `taskiq worker` manager's signal handler is not re-entrant), which then cancel what still
# runs and hand it back to the queue.
supervise() {
    local roles=("$@") pids=() role worker_pid="" SUPERVISOR=$$
    for role in "${roles[@]}"; do
        "$role" &
        pids+=("$!")
        [ "$role" != worker ] || worker_pid=$!
    done
    sent=()
    # SIGTERM to role $1, once: the check and the mark are one command, which a trap cannot split.
    term() {
        (( sent[$1]++ == 0 )) || return 0
        kill -0 "${pids[$1]}" 2>/dev/null || return 0
        say INFO "stopping ${roles[$1]} (pid ${pids[$1]})"
        kill -TERM "${pids[$1]}" 2>/dev/null || true
    }
    stops=0
    stop() {
        stops=$((stops + 1))
        if [ "$stops" -eq 1 ]; then
            term 0
        elif [ "$stops" -eq 2 ] && [ -n "$worker_pid" ]; then
            say WARNING "second signal: cancelling running tasks"
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
    [ -z "$exited" ] || say ERROR "pid $exited exited ($first_status); stopping"
    [ "$stops" -gt 0 ] || stop
    local status=$first_status child_status i
    for i in "${!pids[@]}"; do
        term "$i"
        reap "${pids[i]}"; child_status=$?
        [ "$child_status" -gt "$status" ] && status=$child_status
    done
    exit "$status"
}

case "$RUN_MODE" in
    server) server ;;
    worker) supervise worker ;;
    both) supervise worker server ;;
    *)
        say ERROR "unknown RUN_MODE '$RUN_MODE' (use server, worker or both)"
        exit 64
        ;;
esac
