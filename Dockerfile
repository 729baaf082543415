# ct-omnisend container image: `serve` by default, every other command available.
#
#   docker build -t ct-omnisend .
#   docker run --rm -p 8080:8080 -v "$PWD/ct-omnisend.toml:/etc/ct-omnisend/ct-omnisend.toml:ro" \
#     -e CTP_CLIENT_ID -e CTP_CLIENT_SECRET -e OMNISEND_API_KEY -e CT_OMNISEND_WEBHOOK_TOKEN \
#     ct-omnisend
#
# The binary is static apart from glibc (TLS is rustls, SQLite is compiled in), so the runtime
# image only needs CA certificates. It runs as an unprivileged user, listens on $PORT on all
# interfaces, and stops gracefully on SIGTERM (`docker stop`), within
# `server.shutdown_grace_secs` (10 s; keep docker's stop timeout above it).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo build --release --locked -p ct-omnisend \
 && strip target/release/ct-omnisend

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home ct-omnisend
COPY --from=build /src/target/release/ct-omnisend /usr/local/bin/ct-omnisend
USER 10001
WORKDIR /data
# SQLite state in the /data volume by default; set CT_OMNISEND_STATE=postgres://… for shared state.
ENV PORT=8080 \
    CT_OMNISEND_CONFIG=/etc/ct-omnisend/ct-omnisend.toml \
    CT_OMNISEND_STATE=sqlite:///data/ct-omnisend.db
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["ct-omnisend"]
CMD ["serve"]
