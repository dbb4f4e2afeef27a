# syntax=docker/dockerfile:1
# The orchestrator image (`parley serve`). Build from the repository root:
#   docker build -f docker/orchestrator.Dockerfile -t parley-orchestrator .

FROM rust:1.94-bookworm AS builder
# cmake and a C++ compiler build the bundled whisper.cpp and libopus.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ pkg-config \
 && rm -rf /var/lib/apt/lists/*
# Use the Whisper bindings shipped with whisper-rs-sys; generating them would need libclang.
ENV WHISPER_DONT_GENERATE_BINDINGS=1
# whisper.cpp otherwise compiles for the build machine's CPU (-march=native), and the image would
# die with SIGILL on nodes with an older CPU. OFF targets AVX2/FMA/F16C on x86-64; pass
# --build-arg GGML_NATIVE=ON only when the image runs on the machine type it was built on.
ARG GGML_NATIVE=OFF
ENV GGML_NATIVE=${GGML_NATIVE}
WORKDIR /src
COPY . .
# parley-bot too: the in-process and process launchers can run bots from this image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin parley --bin parley-bot

FROM debian:bookworm-slim
# Root certificates for TLS to Postgres, Redis, SMTP, the LLM endpoint and the Kubernetes API.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 parley \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/parley --no-create-home \
      --shell /usr/sbin/nologin parley \
 && install -d -o 10001 -g 10001 /var/lib/parley
COPY --from=builder /src/target/release/parley /src/target/release/parley-bot /usr/local/bin/
# Numeric, so Kubernetes can verify runAsNonRoot against the image.
USER 10001:10001
# Kubernetes mounts an emptyDir here; under plain `docker run` it is the image's own directory.
ENV PARLEY_DATA_DIR=/var/lib/parley \
    HOME=/var/lib/parley \
    PARLEY_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["parley"]
CMD ["serve"]
