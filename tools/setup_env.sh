#!/usr/bin/env bash
# Create .venv/ in the repository root and install dropbench with its whole stack, mmcv's compiled ops included.
#
# mmcv 2.1.0 (required by mmdet 3.3.0 and mmsegmentation 1.2.2) ships on PyPI as source only, and its setup.py asks
# for C++14/17 while torch 2.14's headers need C++20. This script builds the wheel itself with the standard raised,
# caches it outside the repository, and reuses it. Set DROPBENCH_WHEELHOUSE to a folder holding a ready
# mmcv-2.1.0-*.whl (CI points it at ../shared/wheels) to skip the build.
#
# Environment:
#   PYTHON                 interpreter for the venv (default: python3.11, else python3)
#   DROPBENCH_WHEELHOUSE   folder with a prebuilt mmcv wheel (optional)
#   DROPBENCH_CACHE        where the built wheel is cached (default: ~/.cache/dropbench)
#   FORCE_CUDA             set to 1 to build mmcv's CUDA ops too (needs nvcc); default: CUDA ops only if a GPU is seen
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
CACHE=${DROPBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dropbench}
MMCV_VERSION=2.1.0
STAMP="$VENV/.dropbench-setup"
# Anything that changes what gets installed changes the stamp, so `make setup` re-runs only when needed.
WANT=$(cat "$ROOT/pyproject.toml" "$0" | sha256sum | cut -c1-16)

log() { printf '[setup] %s\n' "$*"; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/dropbench" ]; then
  log ".venv is up to date"
  exit 0
fi

"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "[setup] error: dropbench needs Python 3.11 ($PY is $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
}
[ -d "$VENV" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)

log "build tools (setuptools<82 keeps pkg_resources, which mmcv's setup.py and mmengine need)"
"${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=77,<82" wheel ninja "numpy>=2,<3"
log "torch 2.14.1 + torchvision 0.29.1"
"${PIP[@]}" install -q "torch==2.14.1" "torchvision==0.29.1"

if "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  wheel=""
  if [ -n "${DROPBENCH_WHEELHOUSE:-}" ]; then
    [ -d "$DROPBENCH_WHEELHOUSE" ] || { echo "[setup] error: DROPBENCH_WHEELHOUSE=$DROPBENCH_WHEELHOUSE is not a folder" >&2; exit 1; }
    wheel=$(ls "$DROPBENCH_WHEELHOUSE"/mmcv-$MMCV_VERSION-cp311-*.whl 2>/dev/null | head -n1 || true)
    [ -n "$wheel" ] && log "mmcv from wheelhouse: $wheel" || log "no mmcv-$MMCV_VERSION wheel in $DROPBENCH_WHEELHOUSE; building it"
  fi
  if [ -z "$wheel" ]; then
    wheel=$(ls "$CACHE"/wheels/mmcv-$MMCV_VERSION-cp311-*.whl 2>/dev/null | head -n1 || true)
    [ -n "$wheel" ] && log "mmcv from cache: $wheel"
  fi
  if [ -z "$wheel" ]; then
    log "building mmcv $MMCV_VERSION with compiled ops (about 8 minutes on 2 cores)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work"
    tar -xzf "$work"/mmcv-$MMCV_VERSION.tar.gz -C "$work"
    src="$work/mmcv-$MMCV_VERSION"
    # torch >= 2.13 headers refuse anything below C++20.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    grep -q -- '-std=c++20' "$src/setup.py" || { echo "[setup] error: could not raise the C++ standard in mmcv's setup.py" >&2; exit 1; }
    if [ -z "${FORCE_CUDA+x}" ]; then
      if command -v nvcc >/dev/null && "$VENV/bin/python" -c 'import torch,sys; sys.exit(not torch.cuda.is_available())'; then
        FORCE_CUDA=1
      else
        FORCE_CUDA=0
      fi
    fi
    mkdir -p "$CACHE/wheels"
    (cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=$FORCE_CUDA MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$work/dist" .)
    cp "$work"/dist/mmcv-$MMCV_VERSION-*.whl "$CACHE/wheels/"
    wheel=$(ls "$CACHE"/wheels/mmcv-$MMCV_VERSION-cp311-*.whl | head -n1)
    log "cached $wheel"
  fi
  "${PIP[@]}" install -q --no-deps "$wheel"
fi

log "dropbench and the rest of its stack"
"${PIP[@]}" install -q -e "$ROOT[dev]"
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, timm, torch; print('[setup] ok: torch', torch.__version__, \
'timm', timm.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__)"
echo "$WANT" > "$STAMP"
