#!/usr/bin/env bash
# Regenerates the small digits checkpoints shipped with the dashboard (about 5 minutes on 2 CPU cores).
#   bash checkpoints/make_checkpoints.sh [PYTHON]
# Each model is trained and evaluated with the project's CLI; the evaluation writes metrics.json.
# The resume state (last.safetensors, train_state.json) is removed to keep the shipped files small.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python}
COMMON=(--dataset digits --hidden 128 --epochs 200 --warmup 20 --patience 30 --seed 0 --device cpu)

train() {  # NAME ARGS...
  local name=$1; shift
  rm -rf "checkpoints/$name"
  "$PYTHON" -m vae_core train "${COMMON[@]}" "$@" --out "checkpoints/$name"
  "$PYTHON" -m vae_core evaluate "checkpoints/$name" --samples 5000 --device cpu
  rm -f "checkpoints/$name/last.safetensors" "checkpoints/$name/train_state.json"
}

train digits-vae-standard        --model vae  --prior standard       --latent-dim 20
train digits-vae-mog             --model vae  --prior mog            --latent-dim 20 -K 100
train digits-vae-vampprior       --model vae  --prior vampprior      --latent-dim 20 -K 100
train digits-vae-vampprior-data  --model vae  --prior vampprior-data --latent-dim 20 -K 100
train digits-hvae-standard       --model hvae --prior standard       --latent-dim 20 --latent-dim-z1 20
train digits-hvae-vampprior      --model hvae --prior vampprior      --latent-dim 20 --latent-dim-z1 20 -K 100
train digits-vae2d-standard      --model vae  --prior standard       --latent-dim 2
train digits-vae2d-vampprior     --model vae  --prior vampprior      --latent-dim 2 -K 100
