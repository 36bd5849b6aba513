#!/usr/bin/env bash
# Create .venv and install clipper-bench with everything it needs, from nothing.
#
#   ./setup_env.sh            the tool (and clipper_admin 0.4.1)
#   ./setup_env.sh --test     plus what the test suite needs
#
# clipper_admin 0.4.1 pins cloudpickle==0.5.3, which cannot be imported on Python >= 3.8. It is
# installed here without its dependencies; pyproject.toml lists them with ranges that work today
# (cloudpickle >= 2.1 among them), and the import is checked at the end.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
extras=""
if [[ "${1:-}" == "--test" ]]; then extras="[test]"; fi

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
.venv/bin/python -m pip install --quiet --no-deps "clipper_admin==0.4.1"
.venv/bin/python -m pip install --quiet -e ".${extras}"
.venv/bin/python -c "import clipper_admin, clipper_bench; print('clipper-bench', clipper_bench.__version__, 'with clipper_admin', clipper_admin.__version__, 'is ready in .venv')"
