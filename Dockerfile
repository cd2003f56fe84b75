# syntax=docker/dockerfile:1
# The timingle-chat service image: a wheel built in a throw-away stage, installed into a slim
# runtime that runs as an unprivileged user. Build: docker build -t timingle-chat .

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is made of; chat/schema/{sql,cql} are symlinks into sql/ and cql/.
COPY pyproject.toml README.md ./
COPY sql/ sql/
COPY cql/ cql/
COPY chat/ chat/
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    CHAT_HOST=0.0.0.0 \
    CHAT_PORT=8000 \
    CHAT_DATA_DIR=/var/lib/timingle-chat \
    CHAT_LOG_FORMAT=json
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels timingle-chat \
    && groupadd --system --gid 10001 chat \
    && useradd --system --uid 10001 --gid chat --home-dir /var/lib/timingle-chat \
       --create-home --shell /usr/sbin/nologin chat
USER 10001:10001
WORKDIR /var/lib/timingle-chat
EXPOSE 8000
# /readyz proves PostgreSQL and CQL answer; urllib raises on a 503, so the probe fails then.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('CHAT_PORT', '8000'), timeout=4)"]
CMD ["chat", "serve", "--host", "0.0.0.0"]
