# taskjet: one image for the API server and the worker (RUN_MODE=server|worker|both, see
# docker-entrypoint.sh). Configuration comes from the environment (NATS_URL, REDIS_URL,
# TASKJET_*; see src/config.py).

# --- builder: the project and its dependencies in a self-contained virtualenv ---------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src/ ./src/
# Runtime dependencies only: not the "embedded" (private NATS/Valkey) or "dev" extras.
# `--build-arg EXTRAS=otel` adds OpenTelemetry tracing.
ARG EXTRAS=""
# The project itself (its dependencies' ranges are in pyproject.toml), not a package by name.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"

# --- final: the virtualenv, the app and a non-root user ------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Owned by root and read-only for the app user; works with readOnlyRootFilesystem.
COPY src/ /app/src/
COPY docker-entrypoint.sh /app/docker-entrypoint.sh

RUN groupadd --system --gid 10001 taskjet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin taskjet \
    && chmod 0755 /app/docker-entrypoint.sh

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001

# The API server (RUN_MODE=server or both). Workers listen on no port. No HEALTHCHECK:
# RUN_MODE=worker has no HTTP endpoint; orchestrators probe GET /health or `python -m src check`.
EXPOSE 8000

ENTRYPOINT ["/app/docker-entrypoint.sh"]
