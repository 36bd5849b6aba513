#!/usr/bin/env bash
# Build clipper-bench's Docker images: the base image, the frontend and the model images.
#
#   bin/build_docker_images.sh [--base IMAGE] [--make_base] [--wheels DIR] [--models_dir DIR] [MODEL ...]
#
#   MODEL          images to build after base and frontend (default: noop sleep lgbm kpca-svm;
#                  vgg and inception need torch wheels, ~1 GB)
#   --base IMAGE   the image the base builds on, with python3 (3.11) and its venv module
#                  (default python:3.11-slim-bookworm, pulled from Docker Hub)
#   --make_base    for machines without a reachable registry: make clipper-bench/debian:bookworm with
#                  debootstrap (Debian packages python3, python3-venv, libgomp1) and build on it
#   --wheels DIR   a directory of wheels to install from (default: downloaded here with pip into a
#                  temporary directory); nothing inside a build reaches a package index
#   --models_dir   where `clipper-bench build-models` wrote lgbm and kpca-svm (default models/; built if missing)
#
# Images: clipper-bench/base, clipper-bench/frontend, clipper-bench/<model>. Run from anywhere; uses
# the repository's .venv/bin/python when present.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3
base=python:3.11-slim-bookworm
make_base=0
wheels=""
models_dir=$repo/models
models=()
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=$2; shift 2 ;;
    --make_base) make_base=1; base=clipper-bench/debian:bookworm; shift ;;
    --wheels) wheels=$(cd "$2" && pwd); shift 2 ;;
    --models_dir) models_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "build_docker_images.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=(noop sleep lgbm kpca-svm)
for m in "${models[@]}"; do
  [ -f "$repo/containers/$m/Dockerfile" ] || { echo "build_docker_images.sh: no image for model '$m' (containers/$m/Dockerfile)" >&2; exit 2; }
done
command -v docker >/dev/null || { echo "build_docker_images.sh: docker not found: install Docker first" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "build_docker_images.sh: no Docker engine answers (is dockerd running? DOCKER_HOST=${DOCKER_HOST:-unset})" >&2; exit 2; }

work=$(mktemp -d -t clipper-bench-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [ $make_base = 1 ] && ! docker image inspect "$base" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "build_docker_images.sh: --make_base needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
  echo "making $base with debootstrap (a few minutes) ..."
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libgomp1 bookworm "$work/rootfs" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$work/debootstrap.log" 2>&1 \
    || { tail -5 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | docker import - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi

# wheels for each image: base needs these; the model images add their own
declare -A extra=([lgbm]="lightgbm" [kpca-svm]="scikit-learn skops" [vgg]="torch torchvision" [inception]="torch torchvision")
fetch() {  # fetch DEST PACKAGE...: copy from --wheels, or download with pip
  local dest=$1; shift
  mkdir -p "$dest"
  if [ -n "$wheels" ]; then
    "$python" -m pip download -q --no-index --find-links "$wheels" --only-binary :all: -d "$dest" "$@"
  else
    "$python" -m pip download -q --only-binary :all: -d "$dest" "$@"
  fi
}

echo "wheels ..."
mkdir -p "$work/base/wheels"
"$python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/base/wheels" "$repo" >/dev/null
fetch "$work/base/wheels" numpy pyzmq aiohttp uvloop orjson psutil setproctitle
cp "$repo/containers/base/Dockerfile" "$work/base/"

build() {  # build NAME CONTEXT
  echo "building clipper-bench/$1 ..."
  docker build -q --build-arg "BASE=$base" --build-arg "BASE_IMAGE=clipper-bench/base" \
    -t "clipper-bench/$1" "$2" > "$work/build-$1.log" 2>&1 \
    || { echo "building clipper-bench/$1 failed:" >&2; tail -20 "$work/build-$1.log" >&2; exit 1; }
}
build base "$work/base"
mkdir -p "$work/frontend" && cp "$repo/containers/frontend/Dockerfile" "$work/frontend/"
build frontend "$work/frontend"

for m in "${models[@]}"; do
  ctx=$work/$m
  mkdir -p "$ctx/wheels" "$ctx/models"
  cp "$repo/containers/$m/Dockerfile" "$ctx/"
  if [ -n "${extra[$m]:-}" ]; then
    # shellcheck disable=SC2086
    fetch "$ctx/wheels" ${extra[$m]}
  fi
  if [ "$m" = lgbm ] || [ "$m" = kpca-svm ]; then
    [ -f "$models_dir/manifest.json" ] && grep -q "\"$m\"" "$models_dir/manifest.json" \
      || "$python" -m clipper_bench build-models --models_dir "$models_dir" --models "$m"
    cp -r "$models_dir/." "$ctx/models/"
  fi
  build "$m" "$ctx"
done
# earlier builds of these images, now untagged, are removed (on the vfs storage driver each is a full copy)
docker image prune -f --filter label=clipper-bench.image >/dev/null
echo "built: clipper-bench/base clipper-bench/frontend $(printf 'clipper-bench/%s ' "${models[@]}")"
