#!/usr/bin/env bash
# Regenerates every shipped checkpoint with the project's own CLI.
#
#   bash checkpoints/make_checkpoints.sh [--data-dir DIR] [--jobs N] [--python PY] [NAME ...]
#
# NAME: a checkpoint below, "digits" (the eight small ones, ~20 min on one core, no dataset needed)
# or "paper" (the eight models of the paper, on static MNIST, Caltech 101 Silhouettes and Frey Faces:
# many CPU hours; the dataset files must be in --data-dir, default $VAMPVIZ_DATA_DIR). Default: all.
#
# Each paper model is trained in runs/shipped/NAME (resumable: rerunning continues a killed training
# or evaluation), then its weights are stored in float16 without the resume state (`compact`), it
# is evaluated on the full test set from those weights (S = 5000; metrics.json), 2,000 test and
# 5,000 training images are embedded (`embed-sample`), their PCA/UMAP maps precomputed (`project`),
# and the folder is moved into checkpoints/. The paper's settings: gated MLP 2x300, latent 40
# (z1 = z2 = 40 for the HVAE), K = 500, batch 100, Adam 5e-4 on normalised gradients, early
# stopping with patience 50.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=python
JOBS=1
DATA_DIR=${VAMPVIZ_DATA_DIR:-}
NAMES=()
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir) DATA_DIR=$2; shift 2;;
    --jobs) JOBS=$2; shift 2;;
    --python) PYTHON=$2; shift 2;;
    -h|--help) sed -n '2,16p' "$0"; exit 0;;
    *) NAMES+=("$1"); shift;;
  esac
done
# One thread per process: these models are small, and two threads on two busy cores run slower.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
vz() { "$PYTHON" -m vae_core "$@"; }

DIGITS=(--dataset digits --hidden 128 --epochs 1000 --warmup 20 --patience 100 --seed 0 --device cpu)
declare -A DIGITS_MODELS=(
  [digits-vae-standard]="--model vae --prior standard --latent-dim 20"
  [digits-vae-mog]="--model vae --prior mog --latent-dim 20 -K 100"
  [digits-vae-vampprior]="--model vae --prior vampprior --latent-dim 20 -K 100 --snapshot-every 50"
  [digits-vae-vampprior-data]="--model vae --prior vampprior-data --latent-dim 20 -K 100"
  [digits-hvae-standard]="--model hvae --prior standard --latent-dim 20 --latent-dim-z1 20"
  [digits-hvae-vampprior]="--model hvae --prior vampprior --latent-dim 20 --latent-dim-z1 20 -K 100"
  [digits-vae2d-standard]="--model vae --prior standard --latent-dim 2"
  [digits-vae2d-vampprior]="--model vae --prior vampprior --latent-dim 2 -K 100"
)
PAPER=(--hidden 300 --latent-dim 40 --latent-dim-z1 40 -K 500 --batch-size 100 --lr 5e-4 --normalize-gradients
       --patience 50 --seed 0 --device cpu)
# Budgets: static MNIST 100 epochs (KL warm-up 20); Caltech101 to early stopping (at most 300 epochs,
# warm-up 1: the paper's 100-epoch warm-up overfits this small set before it ends); Frey Faces up to
# 1,000 epochs (warm-up 100) with early stopping.
declare -A PAPER_MODELS=(
  [mnist-static-vae-standard]="--dataset mnist-static --model vae --prior standard --epochs 100 --warmup 20"
  [mnist-static-vae-vampprior]="--dataset mnist-static --model vae --prior vampprior --epochs 100 --warmup 20"
  [mnist-static-hvae-standard]="--dataset mnist-static --model hvae --prior standard --epochs 100 --warmup 20"
  [mnist-static-hvae-vampprior]="--dataset mnist-static --model hvae --prior vampprior --epochs 100 --warmup 20"
  [caltech101-vae-standard]="--dataset caltech101 --model vae --prior standard --epochs 300 --warmup 1"
  [caltech101-vae-vampprior]="--dataset caltech101 --model vae --prior vampprior --epochs 300 --warmup 1"
  [freyfaces-vae-standard]="--dataset freyfaces --model vae --prior standard --epochs 1000 --warmup 100"
  [freyfaces-vae-vampprior]="--dataset freyfaces --model vae --prior vampprior --epochs 1000 --warmup 100"
)

digits_model() {  # NAME: built in a staging folder and then swapped in, so no one sees half a model
  local name=$1 staging=checkpoints/.staging/$1
  rm -rf "$staging"
  # shellcheck disable=SC2086
  vz train "${DIGITS[@]}" ${DIGITS_MODELS[$name]} --out "$staging"
  vz compact "$staging"
  vz evaluate "$staging" --samples 5000 --device cpu
  rm -rf "checkpoints/$name"
  mv "$staging" "checkpoints/$name"
}

paper_model() {  # NAME: trained (or resumed) in runs/shipped, finished, then moved into checkpoints/
  local name=$1 run=runs/shipped/$1
  local data=()
  [ -n "$DATA_DIR" ] && data=(--data-dir "$DATA_DIR")
  if [ -f "$run/model.safetensors" ] && [ ! -f "$run/last.safetensors" ]; then
    echo "$name: trained and compacted already"
  else
    local resume=()
    [ -f "$run/config.json" ] && resume=(--resume)
    # shellcheck disable=SC2086
    vz train "${PAPER[@]}" ${PAPER_MODELS[$name]} "${data[@]}" --out "$run" "${resume[@]}"
    vz compact "$run"
  fi
  vz evaluate "$run" --samples 5000 --device cpu "${data[@]}"
  vz embed-sample "$run" --test 2000 --train 5000 "${data[@]}"
  vz project "$run"
  rm -rf "checkpoints/$name"
  cp -r "$run" "checkpoints/$name.tmp" && mv "checkpoints/$name.tmp" "checkpoints/$name"
}

[ ${#NAMES[@]} -eq 0 ] && NAMES=(digits paper)
QUEUE=()
for name in "${NAMES[@]}"; do
  case $name in
    digits) QUEUE+=("${!DIGITS_MODELS[@]}");;
    paper) QUEUE+=("${!PAPER_MODELS[@]}");;
    *) QUEUE+=("$name");;
  esac
done
run_one() {
  if [ -n "${DIGITS_MODELS[$1]:-}" ]; then digits_model "$1"
  elif [ -n "${PAPER_MODELS[$1]:-}" ]; then paper_model "$1"
  else echo "unknown checkpoint $1" >&2; return 2; fi
}
mkdir -p runs
failed=0
for name in "${QUEUE[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
  run_one "$name" > "runs/make-$name.log" 2>&1 &
  echo "started $name (log: runs/make-$name.log)"
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
rmdir checkpoints/.staging 2>/dev/null || true
[ "$failed" -eq 0 ] || { echo "some checkpoints failed: see runs/make-*.log" >&2; exit 1; }
echo "done: ${QUEUE[*]}"
