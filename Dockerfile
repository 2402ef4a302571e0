# syntax=docker/dockerfile:1
# Container image of trtc-transcription-exporter: the wheel is built in one stage and installed
# into a slim Python runtime in the next, so no compiler, source tree or test file ships.
#
#   docker build --build-arg REVISION="$(git rev-parse --short=12 HEAD)" \
#       -t trtc-transcription-exporter:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp -p 9877:9877 trtc-transcription-exporter:0.1.0 --demo
#
# BASE IMAGE: pinned by tag, without a digest, so that a rebuild picks up the tag's security
# updates. To update it, change PYTHON_IMAGE below to a newer python:3.X.Y-slim-<debian> tag
# (https://hub.docker.com/_/python; keep the Python minor version supported by pyproject.toml),
# then run ./scripts/test: tests/test_deploy.py lints this file with hadolint and replays the
# stages' pip commands in a fresh virtual environment.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The commit the image is built from: the context has no .git, so setup.py reads it from here
# (trtc_exporter_build_info{revision}); "unknown" when not given.
ARG REVISION=unknown
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY exporter/ exporter/
# The project's wheel and the wheels of all its dependencies, for an offline install below.
RUN TRTC_EXPORTER_REVISION="${REVISION}" python -m pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# VERSION must equal trtc_exporter.__version__ (tests/test_deploy.py checks it).
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="trtc-transcription-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Tencent Cloud TRTC live transcription task status" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/trtc-transcription-exporter/trtc-transcription-exporter" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The wheels come in through a bind mount, so they leave no layer behind; the last two commands
# are the image's smoke test.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /wheels trtc-transcription-exporter==${VERSION} \
    && trtc-transcription-exporter --version \
    && trtc-transcription-exporter --help > /dev/null
# A fixed numeric user (Kubernetes' runAsNonRoot can verify a number, not a name), no home, no
# shell. Nothing is written at run time except a short-lived TLS key file in /tmp: run with a
# read-only root filesystem and a tmpfs on /tmp.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin trtc-exporter
USER 10001:10001
# The default --config.file (trtc-exporter.yml) is read from here: mount the config file over it.
WORKDIR /etc/trtc-exporter
EXPOSE 9877
# /-/healthy answers 200 while the poller makes progress. Python instead of curl, which the slim
# image does not have; set HEALTHCHECK_URL when the exporter listens elsewhere.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:9877/-/healthy'), timeout=4)"]
ENTRYPOINT ["trtc-transcription-exporter"]
CMD ["--config.file=/etc/trtc-exporter/trtc-exporter.yml"]
