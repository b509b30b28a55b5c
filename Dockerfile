# syntax=docker/dockerfile:1.7
#
# One image for every Agora process; docker-compose.yml picks the process with `command:`.
#
#   docker build -t agora:dev .
#   docker run --rm agora:dev agora --help
#
# Binaries in /usr/local/bin: command-api, query-api, projector, agora (the CLI) and relay
# (the standalone relay; the command API also runs one in-process when KAFKA_BROKERS is set).

# ---------------------------------------------------------------------------------------------
# builder: compiles the release binaries.
# ---------------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# build-essential: cc and make, for librdkafka (rdkafka-sys runs its ./configure and make)
#   and zstd-sys. pkg-config + zlib1g-dev: librdkafka's zlib (rdkafka's default `libz`
#   feature) links the system libz, which debian:bookworm-slim ships. libssl-dev:
#   librdkafka's TLS and SASL/SCRAM (rdkafka's `ssl` feature) link the system OpenSSL
#   (libssl3 at run time). PostgreSQL TLS and HTTPS use rustls (no system library).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The registry, git checkouts and target dir live in cache mounts, so a rebuild after a
# source change only recompiles our crates. Cache mounts do not reach the image, hence the
# copy to /out inside the same RUN.
RUN --mount=type=cache,id=agora-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=agora-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=agora-target,target=/src/target,sharing=locked \
    cargo build --release --locked \
        --bin command-api \
        --bin query-api \
        --bin projector \
        --bin agora \
        --bin relay \
 && mkdir -p /out \
 && cp target/release/command-api \
       target/release/query-api \
       target/release/projector \
       target/release/agora \
       target/release/relay \
       /out/

# ---------------------------------------------------------------------------------------------
# runtime: debian-slim, curl for the compose healthchecks, a non-root user.
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 agora \
 && useradd --system --uid 10001 --gid agora --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin agora

COPY --from=builder /out/ /usr/local/bin/

# Inside a container, listening on loopback is useless: bind every interface by default
# (docker-compose.yml sets these too). Logs as JSON lines for the log collector.
ENV COMMAND_API_ADDR=0.0.0.0:8080 \
    QUERY_API_ADDR=0.0.0.0:8081 \
    PROJECTOR_ADDR=0.0.0.0:8082 \
    AGORA_LOG_FORMAT=json \
    RUST_LOG=info

EXPOSE 8080 8081 8082
USER 10001:10001
WORKDIR /tmp
CMD ["command-api"]
