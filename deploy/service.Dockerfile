# syntax=docker/dockerfile:1
# One image recipe for the three services, each built with its own argument:
#   docker build -f deploy/service.Dockerfile --build-arg SERVICE=attendance .
# docker-compose.yml builds registration, attendance and reporting this way; the per-service
# differences are only the package installed and its settings, so one recipe keeps them equal.
# tests/deploy checks this file for every service and lints it with hadolint.

FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG SERVICE
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY . .
# Exactly what uv.lock pins, the workspace packages installed as wheels (not editable), so the
# runtime stage needs the virtual environment only.
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "${SERVICE}" \
    && uv sync --frozen --no-dev --no-editable --package "${SERVICE}"

FROM python:3.11-slim
ARG SERVICE
# uvicorn reads its app and options from UVICORN_* variables, so CMD stays in exec form (signals
# reach uvicorn directly) while the app still depends on the build argument. Idle connections stay
# open longer than a heartbeat interval and than any client or load balancer keeps one
# (devstack.services.KEEP_ALIVE_S says why).
ENV PATH="/app/.venv/bin:$PATH" \
    UVICORN_APP="${SERVICE}.app:app" \
    UVICORN_HOST=0.0.0.0 \
    UVICORN_PORT=8000 \
    UVICORN_TIMEOUT_KEEP_ALIVE=75
RUN useradd --system --uid 10001 --no-create-home monitor
COPY --from=build /app/.venv /app/.venv
WORKDIR /app
USER 10001
EXPOSE 8000
# /healthz answers 503 while Kafka is unreachable; the start period covers registration's
# migrations and attendance restoring its partitions.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# Access logs off: 700 heartbeats a second would drown everything else.
CMD ["uvicorn", "--no-access-log"]
