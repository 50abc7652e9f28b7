# bandit-router: one image for `serve` (the default) and `ingest`. docs/container.md
# tells how to build, run and refresh it.
#
# The base is pinned by tag and by digest: the tag says which Python and Debian, the
# digest makes the build use exactly that image, whatever the tag points to later.
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

FROM ${PYTHON_IMAGE} AS build

# 1 adds scikit-learn and httpx (the `simulator` extra: `bandit-router simulate`).
ARG WITH_SIMULATOR=0

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The dependencies first, from the hash-pinned locks only: this layer is rebuilt when a
# lock changes, not on every change to the source.
COPY requirements.lock requirements-simulator.lock ./
RUN python -m venv /opt/venv \
    && lock=requirements.lock \
    && if [ "$WITH_SIMULATOR" = 1 ]; then lock=requirements-simulator.lock; fi \
    && /opt/venv/bin/pip install --require-hashes --only-binary=:all: -r "$lock"

# The project itself, without dependencies (the lock brought them). The wheel is built
# by the base image's own setuptools, pinned with it by the digest, so nothing is
# fetched unpinned at build time.
COPY pyproject.toml README.md ./
COPY bandit ./bandit
COPY cli ./cli
COPY common ./common
COPY reward_ingest ./reward_ingest
COPY router ./router
COPY simulator ./simulator
RUN python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/*.whl


FROM ${PYTHON_IMAGE} AS runtime

# A fixed numeric user, so that Kubernetes' runAsNonRoot can check it without a lookup.
# Its one writable directory is the working directory, where relative paths in the
# config land (decision_log.spool_path is ./bandit-spool.jsonl by default).
RUN groupadd --system --gid 10001 bandit-router \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin bandit-router \
    && install --directory --owner 10001 --group 10001 --mode 0755 /var/lib/bandit-router

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_PORT=8080

USER 10001:10001
WORKDIR /var/lib/bandit-router

EXPOSE 8080 8081

# /healthz answers while the process is up: 8080 for `serve`; set HEALTHCHECK_PORT=8081
# for `ingest`. The slim image has no curl, so Python's urllib asks; an error or a
# status other than 2xx exits non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTHCHECK_PORT', '8080') + '/healthz', timeout=3)"]

ENTRYPOINT ["bandit-router"]
CMD ["serve", "--config", "/etc/bandit-router/config.yaml", "--host", "0.0.0.0"]
