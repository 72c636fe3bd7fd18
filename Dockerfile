# syntax=docker/dockerfile:1
# rqw, as a drop-in for the Python `rq worker` container (docs/MIGRATION.md, docs/CONFIG.md).
#
#   docker build -t rqw .
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -e TWILIO_ACCOUNT_SID=... \
#     -e TWILIO_AUTH_TOKEN=... -v recordings:/app/server/recordings rqw
#
# CI has no Docker engine: compat-tests/dockerfile-steps.sh replays this file's build-stage
# COPY/ENV/RUN lines on the host and starts the binary the runtime stage would run.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rqw \
    && install -D -m 0755 "${CARGO_TARGET_DIR:-target}/release/rqw" dist/rqw \
    && dist/rqw --version

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG RQW_UID=10001
# ca-certificates: the recording download verifies Twilio's TLS with the system store.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid "${RQW_UID}" rqw \
    && useradd --system --uid "${RQW_UID}" --gid "${RQW_UID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin rqw \
    && mkdir -p /app/server/recordings \
    && chown "${RQW_UID}:${RQW_UID}" /app/server/recordings
COPY --from=build /src/dist/rqw /usr/local/bin/rqw

# The Python worker's variables; TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN come from the
# deployment, never from the image.
ENV REDIS_URL=redis://redis:6379/0 \
    RQ_QUEUES=recordings \
    RECORDINGS_DIR=/app/server/recordings \
    RQW_METRICS_ADDR=0.0.0.0:9108

WORKDIR /app
USER ${RQW_UID}:${RQW_UID}
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 \
    CMD ["rqw", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["rqw", "worker"]
