# Roost container image: build in the official Rust image, run in Debian slim.
#   docker build -t roost .
#   docker run -p 8008:8008 -p 8448:8448 -v roost-data:/data \
#     -e ROOST_SERVER_NAME=example.org -e ROOST_REGISTRATION__MODE=token roost
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# benches/ too: the manifest declares bench targets there.
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked && cp target/release/roost /roost

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data roost && mkdir -p /data && chown roost /data
COPY --from=build /roost /usr/local/bin/roost
COPY config.toml /etc/roost/config.toml
USER roost
VOLUME /data
EXPOSE 8008 8448
ENV ROOST_CONFIG=/etc/roost/config.toml \
    ROOST_DATABASE__PATH=/data \
    ROOST_LISTENERS__CLIENT=0.0.0.0:8008
ENTRYPOINT ["roost"]
CMD ["serve"]
