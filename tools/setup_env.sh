#!/usr/bin/env bash
# Create .venv/ in the repository root and install dropbench with its whole stack, mmcv's compiled ops included.
#
# mmcv 2.1.0 (required by mmdet 3.3.0 and mmsegmentation 1.2.2) ships on PyPI as source only, and its setup.py asks
# for C++14/17 while torch 2.14's headers need C++20. This script builds the wheel itself with the standard raised,
# caches it outside the repository, and reuses it. Set DROPBENCH_WHEELHOUSE to a folder holding a ready
# mmcv-2.1.0-*.whl (CI points it at ../shared/wheels) to skip the build.
#
# CPU or CUDA ops: CUDA ops are built when a GPU is visible (nvidia-smi / torch) or FORCE_CUDA=1 (a cross-build on a
# machine without a GPU); FORCE_CUDA=0 forces CPU-only ops. A CUDA build needs an nvcc of torch's CUDA version
# (torch.version.cuda, 13.0): $CUDA_HOME/bin/nvcc or nvcc on the PATH if it matches, otherwise NVIDIA's compiler and
# headers are installed from PyPI into the venv (nvidia-cuda-nvcc, -cccl, -runtime, -crt, nvidia-nvvm of that
# version) and linked into $VENV/cuda-home (tools/cuda_home.py), which becomes CUDA_HOME for the build.
#
# Wheels are cached by kind, and a wheel of another kind is never reused:
#   $CACHE/wheels/cpu/mmcv-2.1.0-cp311-*.whl                 CPU ops
#   $CACHE/wheels/cu130-sm80-sm90/mmcv-2.1.0-cp311-*.whl     CUDA 13.0 ops for compute capabilities 8.0 and 9.0
# A wheelhouse has the same layout; a wheel directly in it with the plain name counts as the CPU kind.
#
# Environment:
#   PYTHON                 interpreter for the venv (default: python3.11, else python3)
#   DROPBENCH_VENV         the venv to set up (default: .venv in the repository root)
#   DROPBENCH_WHEELHOUSE   folder with prebuilt mmcv wheels (optional)
#   DROPBENCH_CACHE        where built wheels are cached (default: ~/.cache/dropbench)
#   FORCE_CUDA             1: build mmcv's CUDA ops even without a GPU; 0: CPU ops only; unset: CUDA ops iff a GPU
#                          is visible
#   TORCH_CUDA_ARCH_LIST   compute capabilities of a CUDA build (default: the visible GPUs'; without a GPU
#                          "8.0;8.6;9.0;10.0;12.0": A100, A10/RTX 30, H100/H200, B200, RTX 50)
#   DROPBENCH_CUDA_FROM_PYPI  1: take nvcc from PyPI even when a matching one is installed
#   MAX_JOBS               parallel compile jobs (default: the number of cores)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${DROPBENCH_VENV:-$ROOT/.venv}
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
CACHE=${DROPBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dropbench}
MMCV_VERSION=2.1.0
DEFAULT_ARCHS="8.0;8.6;9.0;10.0;12.0"
STAMP="$VENV/.dropbench-setup"
KIND_FILE="$VENV/.dropbench-mmcv-kind"  # the kind of the mmcv wheel installed in the venv

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

gpus_seen() { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }
# Anything that changes what gets installed changes the stamp, so `make setup` re-runs only when needed.
WANT=$( { cat "$ROOT/pyproject.toml" "$0"; echo "${FORCE_CUDA:-auto} ${TORCH_CUDA_ARCH_LIST:-}"
          if gpus_seen; then nvidia-smi -L; fi; } | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/dropbench" ]; then
  log "$VENV is up to date"
  exit 0
fi

"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
  die "dropbench needs Python 3.11 ($PY is $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11"
[ -d "$VENV" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check --no-input)

log "build tools (setuptools<82 keeps pkg_resources, which mmcv's setup.py and mmengine need)"
"${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=77,<82" wheel ninja "numpy>=2,<3"
log "torch 2.14.1 + torchvision 0.29.1"
"${PIP[@]}" install -q "torch==2.14.1" "torchvision==0.29.1"

# --- which mmcv kind: cpu, or cu<version>-sm<arch>... -------------------------------------------------------------
read -r TORCH_CUDA TORCH_GPU < <("$VPY" -c 'import torch; print(torch.version.cuda or "", torch.cuda.is_available())')
[ -n "$TORCH_GPU" ] || { TORCH_GPU=$TORCH_CUDA; TORCH_CUDA=""; }  # a CPU-only torch prints one word
want_cuda=${FORCE_CUDA:-}
if [ -z "$want_cuda" ]; then
  if gpus_seen || [ "$TORCH_GPU" = True ]; then
    want_cuda=1
  else
    want_cuda=0
  fi
fi
if [ "$want_cuda" = 1 ]; then
  [ -n "$TORCH_CUDA" ] || die "FORCE_CUDA=1 but this torch has no CUDA (torch.version.cuda is None)"
  if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    TORCH_CUDA_ARCH_LIST=$("$VPY" -c '
import torch
caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}) \
    if torch.cuda.is_available() else []
print(";".join(f"{a}.{b}" for a, b in caps))' 2>/dev/null || true)
    if [ -n "$TORCH_CUDA_ARCH_LIST" ]; then
      log "CUDA architectures of the visible GPUs: $TORCH_CUDA_ARCH_LIST"
    else
      TORCH_CUDA_ARCH_LIST=$DEFAULT_ARCHS
      log "no GPU visible: CUDA architectures $TORCH_CUDA_ARCH_LIST (set TORCH_CUDA_ARCH_LIST to choose)"
    fi
  fi
  export TORCH_CUDA_ARCH_LIST
  # "9.0;8.0+PTX" -> cu130-sm80ptx-sm90
  KIND="cu${TORCH_CUDA//./}-$(tr ' ;' '\n\n' <<<"$TORCH_CUDA_ARCH_LIST" | sed -e '/^$/d' -e 's/+PTX/ptx/I' \
    -e 's/\.//' -e 's/^/sm/' | sort -u | paste -sd- -)"
else
  KIND=cpu
fi
log "mmcv $MMCV_VERSION with $( [ "$KIND" = cpu ] && echo "CPU ops" || echo "CUDA ops ($KIND)")"

installed_kind() {  # the kind of the installed mmcv, or nothing when no mmcv with ops is installed
  "$VPY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null || return 0
  if [ -f "$KIND_FILE" ]; then cat "$KIND_FILE"; return 0; fi
  # installed before kinds were recorded: CPU ops report no CUDA version
  "$VPY" -c "from mmcv.ops import get_compiling_cuda_version as v; print('cpu' if v() == 'not available' else \
'cuda-unknown-archs')" 2>/dev/null || true
}

find_wheel() {  # find_wheel DIR: a wheel of kind $KIND in DIR/$KIND/, or a plain-named one in DIR if KIND is cpu
  local w
  w=$(ls "$1/$KIND"/mmcv-$MMCV_VERSION-cp311-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$w" ] && [ "$KIND" = cpu ]; then
    w=$(ls "$1"/mmcv-$MMCV_VERSION-cp311-cp311-*.whl 2>/dev/null | head -n1 || true)
  fi
  echo "$w"
}

nvcc_release() { "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p'; }

cuda_toolkit() {  # sets CUDA_HOME to a toolkit whose nvcc matches torch's CUDA, from PyPI when needed
  local cand
  if [ "${DROPBENCH_CUDA_FROM_PYPI:-0}" != 1 ]; then
    for cand in ${CUDA_HOME:+"$CUDA_HOME/bin/nvcc"} "$(command -v nvcc || true)" /usr/local/cuda/bin/nvcc; do
      [ -n "$cand" ] && [ -x "$cand" ] || continue
      if [ "$(nvcc_release "$cand")" = "$TORCH_CUDA" ]; then
        CUDA_HOME=$(cd "$(dirname "$(readlink -f "$cand")")/.." && pwd)
        log "nvcc $TORCH_CUDA: $cand (CUDA_HOME=$CUDA_HOME)"
        return 0
      fi
      log "skipping $cand: CUDA $(nvcc_release "$cand"), torch needs $TORCH_CUDA"
    done
  fi
  local major=${TORCH_CUDA%%.*} spec="~=$TORCH_CUDA.0"
  log "installing NVIDIA's CUDA $TORCH_CUDA compiler and headers from PyPI into $VENV"
  "${PIP[@]}" install -q "nvidia-cuda-nvcc$spec" "nvidia-cuda-cccl$spec" "nvidia-cuda-runtime$spec" \
    "nvidia-cuda-crt$spec" "nvidia-nvvm$spec"
  rm -rf "$VENV/cuda-home"
  CUDA_HOME=$("$VPY" "$ROOT/tools/cuda_home.py" "$VENV/cuda-home" "$major")
  [ "$(nvcc_release "$CUDA_HOME/bin/nvcc")" = "$TORCH_CUDA" ] || die "$CUDA_HOME/bin/nvcc is not CUDA $TORCH_CUDA"
  log "nvcc $TORCH_CUDA from PyPI (CUDA_HOME=$CUDA_HOME)"
}

have=$(installed_kind)
if [ -n "$have" ] && { [ "$have" = "$KIND" ] || { [ "$KIND" = cpu ] && [ "${FORCE_CUDA:-}" != 0 ]; }; }; then
  # (a CUDA build has the CPU ops too: a machine without a GPU keeps one unless FORCE_CUDA=0)
  log "mmcv $MMCV_VERSION ($have) already installed"
else
  wheel=""
  if [ -n "${DROPBENCH_WHEELHOUSE:-}" ]; then
    [ -d "$DROPBENCH_WHEELHOUSE" ] || die "DROPBENCH_WHEELHOUSE=$DROPBENCH_WHEELHOUSE is not a folder"
    wheel=$(find_wheel "$DROPBENCH_WHEELHOUSE")
    [ -n "$wheel" ] && log "mmcv from wheelhouse: $wheel" || log "no mmcv-$MMCV_VERSION $KIND wheel in $DROPBENCH_WHEELHOUSE"
  fi
  if [ -z "$wheel" ]; then
    wheel=$(find_wheel "$CACHE/wheels")
    [ -n "$wheel" ] && log "mmcv from cache: $wheel"
  fi
  if [ -z "$wheel" ]; then
    cuda_env=()
    if [ "$KIND" = cpu ]; then
      log "building mmcv $MMCV_VERSION with CPU ops (about 8 minutes on 2 idle cores)"
    else
      cuda_toolkit
      cuda_env=(CUDA_HOME="$CUDA_HOME" PATH="$CUDA_HOME/bin:$PATH" TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST")
      log "building mmcv $MMCV_VERSION with CUDA ops for $TORCH_CUDA_ARCH_LIST (long: see the README's figures)"
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work"
    tar -xzf "$work"/mmcv-$MMCV_VERSION.tar.gz -C "$work"
    src="$work/mmcv-$MMCV_VERSION"
    # torch >= 2.13 headers refuse anything below C++20 (the C++ and the nvcc flag lists).
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    grep -q -- '-std=c++20' "$src/setup.py" || die "could not raise the C++ standard in mmcv's setup.py"
    (cd "$src" && env "${cuda_env[@]}" MMCV_WITH_OPS=1 FORCE_CUDA="$( [ "$KIND" = cpu ] && echo 0 || echo 1)" \
      MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$work/dist" .)
    mkdir -p "$CACHE/wheels/$KIND"
    cp "$work"/dist/mmcv-$MMCV_VERSION-*.whl "$CACHE/wheels/$KIND/"
    wheel=$(ls "$CACHE/wheels/$KIND"/mmcv-$MMCV_VERSION-cp311-*.whl | head -n1)
    log "cached $wheel"
  fi
  "${PIP[@]}" install -q --no-deps --force-reinstall "$wheel"
  echo "$KIND" > "$KIND_FILE"
fi

log "dropbench and the rest of its stack"
"${PIP[@]}" install -q -e "$ROOT[dev]"
"$VPY" -c "import mmcv.ops, mmdet, mmseg, timm, torch; print('[setup] ok: torch', torch.__version__, \
'timm', timm.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__)"
echo "$WANT" > "$STAMP"
