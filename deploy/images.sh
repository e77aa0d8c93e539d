#!/usr/bin/env bash
# Builds the Namelab image (and the load balancer's, for deploy/compose.yaml) on a machine that
# reaches Debian's and PyPI's packages but no image registry, as this project's machines:
#   - the Docker engine: Debian's docker.io, and dockerd started, when `docker info` fails (and
#     Debian's docker-compose, for deploy/compose.yaml);
#   - base images made from Debian's packages by mmdebstrap (kept: made once per machine);
#   - a wheelhouse of Namelab's dependencies built here, with this machine's pip configuration
#     (it serves torch==2.13.0 as a CPU build): pip inside a container cannot reach the index;
#   - `docker build` of the one Dockerfile with those as build arguments.
# With a public registry none of this is needed: `docker build -t namelab .` (README, Deployment).
#
#   deploy/images.sh            everything above; tags $IMAGE (namelab), $PROXY_IMAGE (namelab-proxy)
#   deploy/images.sh engine     only make sure the engine answers (what `make test` runs)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-namelab}
PROXY_IMAGE=${PROXY_IMAGE:-namelab-proxy}
PYTHON=${PYTHON:-.venv/bin/python}   # its pip builds the wheelhouse
WHEELHOUSE=deploy/wheelhouse         # inside the build context (.dockerignore lets it in)
SUITE=bookworm                       # Debian 12: Python 3.11, as python:3.11-slim
# The bases: one to build in (pip, venv), a smaller one to run in (Python only), the proxy's.
BUILD_BASE=namelab-base:$SUITE-build
RUN_BASE=namelab-base:$SUITE-run
PROXY_BASE=namelab-base:$SUITE-haproxy

say() { echo "images.sh: $*" >&2; }

apt_install() {
  say "installing Debian's $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

engine() {
  command -v docker-compose >/dev/null || apt_install docker-compose
  docker info >/dev/null 2>&1 && return
  command -v dockerd >/dev/null || apt_install docker.io
  say "starting dockerd (log: /var/log/namelab-dockerd.log)"
  setsid dockerd >/var/log/namelab-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
  say "dockerd did not answer in 60 s:"; tail -20 /var/log/namelab-dockerd.log >&2; exit 1
}

base() {  # base TAG PACKAGES: a minimal Debian with those packages, imported as an image
  docker image inspect "$1" >/dev/null 2>&1 && return
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  say "making $1 from Debian $SUITE with $2 (about a minute)"
  # Without documentation, manual pages and translations: 50 MB less, nothing runs them.
  mmdebstrap --quiet --variant=minbase --include="$2" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" - | docker import - "$1" >/dev/null
}

wheelhouse() {  # the dependencies of pyproject.toml and its build requirements, as wheels
  local wanted
  wanted=$("$PYTHON" -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]))')
  [ "$wanted" = "$(cat "$WHEELHOUSE/requirements.txt" 2>/dev/null)" ] && return
  say "building the wheelhouse in $WHEELHOUSE"
  find "$WHEELHOUSE" -name '*.whl' -delete
  echo "$wanted" >"$WHEELHOUSE/.requirements.txt"
  "$PYTHON" -m pip wheel --quiet --wheel-dir "$WHEELHOUSE" -r "$WHEELHOUSE/.requirements.txt"
  mv "$WHEELHOUSE/.requirements.txt" "$WHEELHOUSE/requirements.txt"  # complete: mark it so
}

build() {
  base "$BUILD_BASE" python3,python3-venv,python3-pip,ca-certificates
  base "$RUN_BASE" python3
  base "$PROXY_BASE" haproxy
  wheelhouse
  say "building $IMAGE"
  docker build --quiet --tag "$IMAGE" \
    --build-arg BUILD_IMAGE="$BUILD_BASE" --build-arg RUNTIME_IMAGE="$RUN_BASE" \
    --build-arg WHEELHOUSE=1 . >/dev/null
  say "building $PROXY_IMAGE"
  docker build --quiet --tag "$PROXY_IMAGE" --build-arg BASE_IMAGE="$PROXY_BASE" \
    deploy/haproxy >/dev/null
  docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE" >&2
}

engine
case "${1:-all}" in
  engine) ;;
  all) build ;;
  *) say "usage: deploy/images.sh [engine|all]"; exit 2 ;;
esac
