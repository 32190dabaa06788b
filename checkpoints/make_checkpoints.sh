#!/usr/bin/env bash
# Regenerates the small digits checkpoints shipped with the dashboard (about 20 minutes on one core).
#   bash checkpoints/make_checkpoints.sh [PYTHON]
# Each model is trained and evaluated with the project's CLI; the evaluation writes metrics.json.
# The resume state (last.safetensors, train_state.json) is removed to keep the shipped files small.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python}
COMMON=(--dataset digits --hidden 128 --epochs 1000 --warmup 20 --patience 100 --seed 0 --device cpu)
# One thread: these models are small, and two threads on two busy cores run several times slower.
export OMP_NUM_THREADS=1
STAGING=checkpoints/.staging

train() {  # NAME ARGS... : built in a staging folder and then swapped in, so no one sees half a model
  local name=$1
  shift
  local staging="$STAGING/$name"
  rm -rf "$staging"
  "$PYTHON" -m vae_core train "${COMMON[@]}" "$@" --out "$staging"
  "$PYTHON" -m vae_core evaluate "$staging" --samples 5000 --device cpu
  rm -f "$staging/last.safetensors" "$staging/train_state.json"
  rm -rf "checkpoints/$name"
  mv "$staging" "checkpoints/$name"
}

train digits-vae-standard        --model vae  --prior standard       --latent-dim 20
train digits-vae-mog             --model vae  --prior mog            --latent-dim 20 -K 100
train digits-vae-vampprior       --model vae  --prior vampprior      --latent-dim 20 -K 100 --snapshot-every 50
train digits-vae-vampprior-data  --model vae  --prior vampprior-data --latent-dim 20 -K 100
train digits-hvae-standard       --model hvae --prior standard       --latent-dim 20 --latent-dim-z1 20
train digits-hvae-vampprior      --model hvae --prior vampprior      --latent-dim 20 --latent-dim-z1 20 -K 100
train digits-vae2d-standard      --model vae  --prior standard       --latent-dim 2
train digits-vae2d-vampprior     --model vae  --prior vampprior      --latent-dim 2 -K 100
rmdir "$STAGING"
