#!/usr/bin/env bash
# Build the book at the smoke preset, offline assets included, and test it in headless Chromium
# (tests/book: every page at a desktop and a phone width, then chapter 4 run in JupyterLab at smoke). The smoke runs go to runs/ (or $BOOK_RUNS_DIR) and are reused while nothing changed.
# Needs Debian's chromium and npm; as root it installs them when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${BOOK_RUNS_DIR:-runs}

missing=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "test_book.sh: install ${missing[*]} first (Debian: apt-get install -y ${missing[*]})" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash scripts/install_book_assets.sh
start=$(date +%s)
"$PY" -m inpaintlib book --preset smoke --runs-dir "$RUNS"
echo "test_book.sh: smoke book built in $(( $(date +%s) - start )) s"
"$PY" -m pytest tests/book -q
