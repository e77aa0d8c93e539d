# Namelab: the web app with the shipped models, installed from its own wheel.
#
# With a public registry and PyPI (the defaults):
#   docker build -t namelab .
# On this project's machines (no image registry; pip inside a container cannot reach the index):
#   make image      # Debian-made bases and a wheelhouse built on the host: deploy/images.sh
#   docker run --rm -p 8000:8000 --read-only --tmpfs /tmp --cap-drop ALL \
#     --security-opt no-new-privileges namelab
#
# The two stages must use the same Python at the same path (the venv's python is a symlink to
# it): python:3.11-slim twice, or two Debian bookworm images with Debian's python3.
ARG BUILD_IMAGE=python:3.11-slim
ARG RUNTIME_IMAGE=python:3.11-slim

# ---- deps: a venv in /opt/venv with the dependencies -------------------------------------------
FROM ${BUILD_IMAGE} AS deps

# Where pip gets packages. Public defaults: torch from PyTorch's CPU index (PyPI's torch is a
# multi-GB CUDA build), everything else from PyPI. WHEELHOUSE=1: from the wheels in
# deploy/wheelhouse/ alone, with no index (deploy/images.sh puts them there and passes it).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG WHEELHOUSE=

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The dependencies, read from pyproject.toml: code changes do not redo this layer. The base's
# pip installs into the venv (--python), so the venv holds no pip. The wheelhouse stays in this
# stage: the final image copies the venv only.
COPY pyproject.toml ./
COPY deploy/wheelhouse/ wheelhouse/
RUN set -eu; \
    if [ -n "$WHEELHOUSE" ]; then \
        torch_from="--no-index --find-links /src/wheelhouse"; from="$torch_from"; \
    else \
        torch_from="--index-url $TORCH_INDEX_URL"; from="--index-url $PIP_INDEX_URL"; \
    fi; \
    echo "$from" > pip-source; \
    python3 -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt; \
    python3 -m venv --without-pip /opt/venv; \
    pip="python3 -m pip --python /opt/venv/bin/python"; \
    $pip install --quiet $torch_from "$(grep '^torch==' requirements.txt)"; \
    $pip install --quiet $from -r requirements.txt; \
    # What serving does not need (200 MB): the packages' own test suites, torch's C++ test
    # programs, headers and tools (for building extensions: there is no compiler here anyway).
    site=$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))"); \
    rm -rf "$site"/torch/test "$site"/torch/include "$site"/torch/bin/*Test* \
        "$site"/torch/bin/test_* "$site"/torch/bin/protoc*; \
    find "$site" -depth -type d -name tests -exec rm -rf {} +; \
    # Namelab itself goes to /opt/namelab (its own small layer, below): the venv finds it there.
    echo /opt/namelab > "$site/namelab.pth"; \
    chmod -R a+rX,go-w /opt/venv

# ---- build: Namelab's wheel, built from the source and installed into /opt/namelab -----------
FROM deps AS build

# templates/, static/ and models/ go inside the wheel; nothing of the source reaches the final
# image. No editable checkout: pip installs the wheel.
COPY README.md ./
COPY app/ app/
COPY templates/ templates/
COPY static/ static/
COPY models/ models/
RUN set -eu; \
    python3 -m pip wheel --quiet --no-deps $(cat pip-source) --wheel-dir /tmp/dist . ; \
    python3 -m pip --python /opt/venv/bin/python install --quiet --no-deps \
        --target /opt/namelab /tmp/dist/namelab-*.whl; \
    python3 -m pip --python /opt/venv/bin/python check; \
    chmod -R a+rX,go-w /opt/namelab

# ---- runtime: Python, the venv, Namelab, a non-root user --------------------------------------
FROM ${RUNTIME_IMAGE}

# The user by its line in /etc/passwd (Debian's minbase has no useradd). It owns only
# /data/users, where deploy/compose.yaml mounts the users' models (a new volume takes the
# folder's owner); the venv, the code and the shipped models are root's and read-only to it.
RUN echo 'namelab:x:10001:10001:namelab:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'namelab:x:10001:' >> /etc/group \
    && mkdir -p /data/users && chown 10001:10001 /data/users

# Two layers: the dependencies (900 MB, unchanged by code changes) and Namelab (2 MB).
COPY --from=deps /opt/venv /opt/venv
COPY --from=build /opt/namelab /opt/namelab

# One worker process with one torch thread: a container often sees all of the host's cores but
# gets a share of them, and torch would start a thread per core it sees. Each worker runs its
# model work on one thread (app/serving/worker.py); give it the cores the container really has with
# -e OMP_NUM_THREADS=2 (faster big requests), or scale out with more containers (the app is
# stateless; deploy/compose.yaml) or -e NAMELAB_WORKERS=4. Settings: NAMELAB_* (README).
ENV PATH=/opt/namelab/bin:/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NAMELAB_HOST=0.0.0.0 \
    NAMELAB_PORT=8000 \
    NAMELAB_WORKERS=1 \
    OMP_NUM_THREADS=1

USER 10001:10001
EXPOSE 8000

# Healthy = the models are loaded and the server answers (/readyz). The start period is a grace
# period (healthy at the first check that passes): 10-15 s suffice on a quiet machine, but a cold
# start on a busy one took over 90 s here. The timeout covers a check on an overloaded machine.
HEALTHCHECK --interval=10s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=9)"]

# `namelab serve` serves the models inside the wheel unless NAMELAB_MODELS_DIR names a folder
# (mount one read-only). With no valid model it exits non-zero with a one-line reason. SIGTERM:
# uvicorn stops accepting, answers the requests in flight, then exits.
CMD ["namelab", "serve"]
