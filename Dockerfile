# Namelab: the web app with the shipped models. See "Deployment and hardening" in the README.
#   docker build -t namelab .
#   docker run --rm -p 8000:8000 --read-only --tmpfs /tmp namelab
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/namelab

# 1. PyTorch, CPU-only: from PyTorch's CPU wheel index (PyPI's torch is a multi-GB CUDA build).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# 2. The other dependencies, read from pyproject.toml (torch==2.13.0 is already satisfied by the
#    CPU build). Only pyproject.toml is copied first, so code changes do not redo this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 3. The code, templates, static files and the shipped models (.dockerignore lets in nothing
#    else). Editable install: the `namelab` command, with templates/ and models/ found next to
#    app/. Everything is root-owned and world-readable: the app user cannot change any of it.
COPY README.md ./
COPY app/ app/
COPY templates/ templates/
COPY static/ static/
COPY models/ models/
RUN pip install --no-deps -e . \
    && chmod -R a+rX,go-w /srv/namelab \
    && groupadd --system --gid 10001 namelab \
    && useradd --system --uid 10001 --gid namelab --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin namelab

USER 10001:10001

# Settings are NAMELAB_* variables (app/config.py), e.g. -e NAMELAB_RATE_LIMIT_PER_MINUTE=600.
# One worker process with one torch thread: a container often sees all of the host's cores but
# gets a share of them, and torch would start a thread per core it sees. Each worker runs its
# model work on one thread (app/worker.py); give it the cores the container really has with
# -e OMP_NUM_THREADS=2 (faster big requests), or scale out with more containers (the app is
# stateless) or -e NAMELAB_WORKERS=4.
ENV NAMELAB_WORKERS=1 \
    OMP_NUM_THREADS=1

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# `namelab serve` runs uvicorn with NAMELAB_WORKERS worker processes. It checks the models
# before starting the workers, so a container with no valid model exits with status 1 and a
# one-line reason (uvicorn's own multi-worker supervisor would exit 0).
CMD ["namelab", "serve", "--host", "0.0.0.0", "--port", "8000"]
