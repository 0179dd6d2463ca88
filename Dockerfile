# Coinpurse: a multi-stage build. The first stage builds a virtual environment with
# Coinpurse and its production extras; the second copies only that environment into a slim
# image that runs as an unprivileged user.
#   docker build -t coinpurse .
#   docker run --env-file .env -p 8000:8000 coinpurse            (serve; see compose.yaml)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/coinpurse \
 && /opt/coinpurse/bin/pip install --upgrade pip \
 && /opt/coinpurse/bin/pip install ".[redis,otel]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 coinpurse \
 && useradd --system --uid 10001 --gid coinpurse --home-dir /app --shell /usr/sbin/nologin \
    coinpurse \
 && mkdir -p /app && chown coinpurse:coinpurse /app
COPY --from=build /opt/coinpurse /opt/coinpurse
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/coinpurse-entrypoint
ENV PATH=/opt/coinpurse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COINPURSE_LOG_FORMAT=json
WORKDIR /app
USER 10001:10001
EXPOSE 8000 9100
# Liveness of the HTTP server (the worker's compose service checks its metrics port instead).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["coinpurse-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
