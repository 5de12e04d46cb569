# sincro-whatsapp: build with Rust, run on Debian slim with Debian's Chromium (Lite sessions)
# as a non-root user. Configuration is the environment (README, "Configuration").
#
#   docker build -t sincro-whatsapp .
#   docker run -p 8080:8080 -e DATABASE_URL=... -e ENCRYPTION_KEY=... sincro-whatsapp

FROM rust:1.92-slim-trixie AS build
WORKDIR /src
# aws-lc (TLS to PostgreSQL and the Graph API) builds with a C compiler and cmake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sincro-whatsapp \
    && install -m 0755 target/release/sincro-whatsapp /usr/local/bin/sincro-whatsapp

FROM debian:trixie-slim
# chromium: the browser of Lite sessions; ca-certificates: the system roots for sslmode=verify-*
# and the Graph API; curl: the health check; tini reaps what Chromium leaves behind.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium ca-certificates curl tini fonts-liberation \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/sincro-whatsapp --create-home sincro
COPY --from=build /usr/local/bin/sincro-whatsapp /usr/local/bin/sincro-whatsapp
# Chromium's own sandbox needs user namespaces, which Docker's default seccomp profile
# refuses; the container is the browser's sandbox here.
ENV BIND_ADDR=0.0.0.0:8080 \
    DATA_DIR=/var/lib/sincro-whatsapp \
    CHROMIUM_PATH=/usr/bin/chromium \
    CHROMIUM_ARGS=--no-sandbox \
    LOG_FORMAT=json
VOLUME ["/var/lib/sincro-whatsapp"]
WORKDIR /var/lib/sincro-whatsapp
USER sincro
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/sincro-whatsapp"]
CMD ["serve"]
