#!/usr/bin/env bash
# The GPU check in one command, on a machine with a CUDA GPU and no network:
#
#     bash benchmarks/gpu_check.sh OUTDIR [DATA_DIR]
#
# With the machine's own python3 (and its torch) it runs the CUDA tests (pytest -m cuda),
# benchmarks/gpu_speed.py, benchmarks/speed.py --device cuda and one epoch of the conv models
# (benchmarks/reproduce.py --models convhvae pixelhvae). Packages the machine lacks come
# from the wheels in .gpu-carry/wheels, installed with pip --no-index into a temporary folder put
# on PYTHONPATH (the system's packages are left alone). DATA_DIR (default: $VAMPVIZ_DATA_DIR, else
# .gpu-carry/data) holds mnist_static/binarized_mnist_static.npz. Everything lands in OUTDIR:
# summary.txt, env.txt, pytest.log, gpu_speed.{json,md,log}, speed.log and conv.log. The whole check ends
# within $GPU_CHECK_SECONDS (default 560); a step that fails or runs out of time is recorded in
# summary.txt and the next one runs. Exit status 0 only if every step passed.
#
#     bash benchmarks/gpu_check.sh --prepare [DATA_DIR]
#
# Here, on a machine that reaches PyPI: fills .gpu-carry/ (git-ignored) with those wheels, built
# for the GPU machine's CPython 3.12 on x86-64, and a copy of static MNIST from DATA_DIR (default:
# $VAMPVIZ_DATA_DIR, else ../shared/data), to carry with the run.
set -uo pipefail
PY=${PYTHON:-python3}

# What the lent GPU machine's image lacks (its python3 has torch, numpy, scipy, pandas, pyarrow,
# scikit-learn, safetensors, tqdm, pillow, protobuf, pytest...): the dashboard's Streamlit and
# Plotly with their own needs, at the versions requirements.txt resolves to. umap-learn is left
# out: no CUDA test or timing uses UMAP.
WHEELS=(
  streamlit==1.67.0 plotly==7.1.0 narwhals==2.29.0 altair==6.3.0 pydeck==0.9.3
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  starlette==1.10.0 uvicorn==0.55.0 python-multipart==0.0.34 websockets==17.4 itsdangerous==2.2.0
  watchdog==7.1.0
)
STATIC_MNIST=mnist_static/binarized_mnist_static.npz

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARRY=$ROOT/.gpu-carry

prepare() {
  mkdir -p "$CARRY/wheels" "$CARRY/data/mnist_static"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$CARRY/wheels" "${WHEELS[@]}" || return 1
  local source=${1:-${VAMPVIZ_DATA_DIR:-$ROOT/../shared/data}}/$STATIC_MNIST
  if [ -f "$source" ]; then
    cp "$source" "$CARRY/data/$STATIC_MNIST"
  else
    echo "warning: $source not found; gpu_speed.py will time random images instead of static MNIST" >&2
  fi
  du -sh "$CARRY" && ls "$CARRY/wheels"
}

if [ "${1:-}" = "--prepare" ]; then
  prepare "${2:-}"
  exit $?
fi
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: bash benchmarks/gpu_check.sh OUTDIR [DATA_DIR]  |  bash benchmarks/gpu_check.sh --prepare [DATA_DIR]" >&2
  exit 2
fi

OUT=$(mkdir -p "$1" && cd "$1" && pwd)
DATA=${2:-${VAMPVIZ_DATA_DIR:-$CARRY/data}}
DATA=$(cd "$DATA" 2>/dev/null && pwd || echo "$DATA")
cd "$ROOT" || exit 2
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-560}))
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
failed=0

# step NAME CAP_SECONDS LOG COMMAND...: run under the smaller of CAP and the time left, log to LOG.
step() {
  local name=$1 cap=$2 log=$3
  shift 3
  local left=$((DEADLINE - SECONDS)) started=$SECONDS
  local limit=$((left < cap ? left : cap))
  if [ "$limit" -lt 20 ]; then
    echo "$name: skipped, ${left} s of GPU_CHECK_SECONDS left" | tee -a "$SUMMARY"
    failed=1
    return
  fi
  echo "== $name (at most ${limit} s)"
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$log"
  local status=$?
  local verdict="ok"
  [ "$status" -eq 0 ] || { verdict="FAILED (exit $status$([ "$status" -eq 124 ] && echo ', timed out'))"; failed=1; }
  echo "$name: $verdict in $((SECONDS - started)) s, log $(basename "$log")" | tee -a "$SUMMARY"
}

# --- the machine, and what it lacks --------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  uname -a
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], sys.executable); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print('gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)" 2>&1
} >"$OUT/env.txt"
SITE=${TMPDIR:-/tmp}/vampviz-gpu-site
if compgen -G "$CARRY/wheels/*.whl" >/dev/null; then
  if "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "$CARRY"/wheels/*.whl >>"$OUT/env.txt" 2>&1; then
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    echo "installed from .gpu-carry/wheels into $SITE: $(cd "$CARRY/wheels" && ls | tr '\n' ' ')" >>"$OUT/env.txt"
  else
    echo "install: FAILED (see env.txt)" | tee -a "$SUMMARY"
    failed=1
  fi
fi
"$PY" - >>"$OUT/env.txt" 2>&1 <<'EOF'
import importlib
for name in ("torch", "numpy", "scipy", "sklearn", "pandas", "safetensors", "tqdm", "PIL", "streamlit", "plotly",
             "pytest"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as error:  # noqa: BLE001 - a missing package is reported, not fatal
        print(f"{name} MISSING: {error}")
EOF
grep -q "MISSING" "$OUT/env.txt" && echo "packages: some are missing, see env.txt" | tee -a "$SUMMARY"
head -12 "$OUT/env.txt"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "CUDA: $PY's torch sees no GPU; the CUDA tests will only skip" | tee -a "$SUMMARY"
  failed=1
fi

export PYTHONUNBUFFERED=1 VAMPVIZ_DATA_DIR=$DATA
export VAMPVIZ_CACHE_DIR=${TMPDIR:-/tmp}/vampviz-gpu-cache NUMBA_CACHE_DIR=${TMPDIR:-/tmp}/vampviz-gpu-cache/numba

# --- the checks, most important first ------------------------------------------------------------
step "pytest -m cuda" 150 "$OUT/pytest.log" \
  "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider --continue-on-collection-errors
step "gpu_speed.py" 230 "$OUT/gpu_speed.stdout" \
  "$PY" benchmarks/gpu_speed.py --device cuda --out "$OUT" --data-dir "$DATA" \
  --budget $(( (DEADLINE - SECONDS < 230 ? DEADLINE - SECONDS : 230) - 15 ))
rm -f "$OUT/gpu_speed.stdout"  # gpu_speed.md holds what it printed; OUTDIR keeps few files
step "speed.py --device cuda" 120 "$OUT/speed.log" \
  "$PY" benchmarks/speed.py --device cuda --no-write --no-compile --rounds 3
# the paper's conv models (vae_core.pixelcnn), one epoch each on static MNIST and S = 5000 on 100
# test images: their s/epoch and evaluation time size the GPU budget of their reproduction rows
step "convHVAE and PixelHVAE, 1 epoch each" 150 "$OUT/conv.log" \
  "$PY" benchmarks/reproduce.py --device cuda --data-dir "$DATA" --datasets mnist-static \
  --models convhvae pixelhvae --priors vampprior --epochs mnist-static=1 --warmup mnist-static=0 \
  --test-limit mnist-static=100 --runs-dir "${TMPDIR:-/tmp}/vampviz-gpu-conv" --no-report

echo
echo "GPU check on $(grep '^gpu ' "$OUT/env.txt" | cut -d' ' -f2-): $([ $failed -eq 0 ] && echo passed || echo 'see above')" \
  | tee -a "$SUMMARY"
exit $failed
