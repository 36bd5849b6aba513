#!/usr/bin/env bash
# Create .venv and install clipper-bench with everything it needs, from nothing.
#
#   ./setup_env.sh            the tool, clipper_admin 0.4.1 and what all four models need: LightGBM
#                             and scikit-learn, and torch + torchvision for vgg and inception (the
#                             default image framework), the package index's default build (on Linux
#                             x86-64 with CUDA libraries: about 6 GB in .venv, and it runs on CPUs too).
#                             TORCH_BUILD=cpu ./setup_env.sh takes PyTorch's CPU-only build from
#                             download.pytorch.org instead (about 1.5 GB). Add Keras with
#                             .venv/bin/pip install -e '.[keras]', Ray Serve with '.[ray]'.
#   ./setup_env.sh --test     plus what the test suite needs: Keras, Ray and the test tools (the
#                             CPU tests run Keras on its torch backend); as root, also Docker's engine
#                             and debootstrap from apt when missing, for the --engine docker tests
#                             (best effort: without them those tests are skipped and say why)
#
# clipper_admin 0.4.1 pins cloudpickle==0.5.3, which cannot be imported on Python >= 3.8. It is
# installed here without its dependencies; pyproject.toml lists them with ranges that work today
# (cloudpickle >= 2.1 among them), and the import is checked at the end.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
extras="[torch]"
if [[ "${1:-}" == "--test" ]]; then extras="[test,torch,keras,ray]"; fi
TORCH_BUILD=${TORCH_BUILD:-default}
case "$TORCH_BUILD" in default|cpu) ;; *) echo "TORCH_BUILD must be default or cpu, not '$TORCH_BUILD'" >&2; exit 2 ;; esac

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"clipper-bench needs Python 3.11 or newer; {sys.executable} is {sys.version.split()[0]}. "
             "Set PYTHON=/path/to/python3.11 and run again.")
PY

if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# --no-warn-conflicts: pip would otherwise end with an ERROR line about clipper_admin's cloudpickle
# pin on a good install (see above); the import check at the end is the real check.
.venv/bin/python -m pip install --quiet --no-warn-conflicts --no-deps "clipper_admin==0.4.1"
if [[ "$TORCH_BUILD" == cpu ]]; then
  # both from PyTorch's CPU index alone (a torchvision from elsewhere would not match its torch)
  PIP_FIND_LINKS="" .venv/bin/python -m pip install --quiet --no-warn-conflicts --timeout 30 \
    --index-url https://download.pytorch.org/whl/cpu torch torchvision \
    || { echo "TORCH_BUILD=cpu: PyTorch's CPU index (download.pytorch.org) cannot be reached; run without TORCH_BUILD for the default build" >&2; exit 1; }
else  # the versions the suite is known to pass with, the package index's default build
  .venv/bin/python -m pip install --quiet --no-warn-conflicts "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/python -m pip install --quiet --no-warn-conflicts -e ".${extras}"
if [[ "${1:-}" == "--test" && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]} for the docker engine tests ..."
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; }; } \
      || echo "could not install ${missing[*]}: the docker engine tests will be skipped"
  fi
fi
.venv/bin/python -c "import clipper_admin, clipper_bench; print('clipper-bench', clipper_bench.__version__, 'with clipper_admin', clipper_admin.__version__, 'is ready in .venv')"
