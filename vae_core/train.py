"""Training: Adam, KL warm-up, early stopping, atomic checkpoints, resume, progress callbacks.

The schedule follows the paper: Adam with learning rate 5e-4 (optionally with normalised
gradients, each parameter's gradient divided by its L2 norm), batches of 100, KL warm-up
beta = min(1, epoch / warmup), and early stopping on the validation loss (-ELBO at beta = 1) once
warm-up is over. The best model is saved after each improving epoch; the latest state after every
epoch, so `resume=True` continues exactly where training stopped.

An epoch is committed by one atomic rename, that of last.safetensors, whose metadata holds the
counters (epoch, best loss and epoch, patience, optimiser settings, history length). history.json
is written just before it and is cut back to the committed epochs on resume; model.safetensors
just after it, and in an improving epoch the committed weights are the best ones, so a resume
that finds model.safetensors behind the committed best epoch rewrites it from last.safetensors.
A run killed at any instant therefore resumes to the same weights as one never interrupted.

Multi-process training: `torchrun --nproc_per_node N -m vae_core train ...` runs `train` in N
processes that train one model with DistributedDataParallel (NCCL on CUDA, gloo on CPU).
`batch_size` is the global batch, split evenly across the processes, so the result matches
one-process training with the same batch size; see `vae_core.distributed`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed, snapshots
from .config import ModelConfig
from .data import DatasetSplits, get_spec, load_dataset
from .errors import CheckpointError, TrainingDivergedError
from .evaluate import active_units, elbo_terms
from .files import atomic_write_json, unwritable_reason
from .models import build_model
from .seeding import rng_state, set_rng_state

ACTIVE_UNITS_VAL_POINTS = 1000  # validation images behind each epoch's active-unit count


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 100
    lr: float = 5e-4
    warmup: int = 100  # epochs of KL warm-up (0: none)
    patience: int = 50  # early stopping: epochs without improvement after warm-up
    normalize_gradients: bool = False
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    snapshot_every: int = 0  # write snapshots/epoch-N (vae_core.snapshots) every N epochs; 0: never

    def validate(self) -> TrainConfig:
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0, got {self.snapshot_every}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        return self

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Progress:
    """Sent to the progress callback after every step; `record` is set at the end of an epoch."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    beta: float
    record: dict | None = None


@dataclass
class TrainResult:
    path: Path
    history: list[dict]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    interrupted: bool


def resolve_device(name: str = "auto") -> torch.device:
    """auto: CUDA, then MPS, then CPU; otherwise the named device (checked to exist). An unknown
    or unavailable name is a one-line ValueError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} "
                             "CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but MPS is not available; use --device cpu or auto")
    return device


def kl_weight(epoch: int, warmup: int) -> float:
    """beta for a 1-based epoch: linear from 1/warmup up to 1."""
    return 1.0 if warmup == 0 else min(1.0, epoch / warmup)


def normalize_gradients_(parameters) -> None:
    """Divide each parameter's gradient by its L2 norm (Yu et al., 2017), as the paper's Adam does.

    A parameter that holds several of the paper's tensors side by side (a gated layer's h and g,
    `norm_groups` = 2) has each part normalised on its own, as if they were separate tensors.
    """
    grads = []
    for p in parameters:
        if p.grad is not None:
            grads.extend(p.grad.chunk(getattr(p, "norm_groups", 1)))  # views: dividing them divides p.grad
    if grads:  # one vectorised kernel per op for all tensors, as clip_grad_norm_ does
        norms = torch._foreach_add(torch._foreach_norm(grads), 1e-8)
        torch._foreach_div_(grads, norms)


@dataclass
class _State:
    """The counters an epoch commits (in last.safetensors' metadata, with the optimiser settings)."""

    epoch: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0


def _save_last(out: Path, model: nn.Module, optimizer, state: _State) -> None:
    """Commit an epoch: weights, optimiser moments, RNG state and counters in one atomic write."""
    tensors, rest = ckpt.optimizer_tensors(optimizer)
    tensors |= {f"model.{k}": v for k, v in model.state_dict().items()}
    # randperm and bernoulli on a GPU draw from its own generator: rng_state includes it
    tensors |= rng_state(next(model.parameters()).device)
    counters = asdict(state) | {"history_length": state.epoch} | rest
    ckpt.save_tensors(out / ckpt.LAST_FILE, tensors, {ckpt.TRAIN_STATE_KEY: json.dumps(counters)})


def _restore_last(out: Path, model: nn.Module, optimizer) -> tuple[_State, list[dict]]:
    """The committed state of `out`: model, optimiser and RNG restored; the counters and the history
    of the committed epochs (history.json may hold one more, written before a commit it missed)."""
    last = out / ckpt.LAST_FILE
    saved = ckpt.read_train_state(out)
    ckpt.check_tensors({k[len("model."):]: v for k, v in ckpt.read_header(last).tensors.items()
                        if k.startswith("model.")},
                       {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}, last)
    tensors = ckpt.read_tensors(last)
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    ckpt.load_state_into(model, weights, last)
    try:
        optimizer.load_state_dict(ckpt.optimizer_state(tensors, saved))
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(
            f"{last}: its optimiser state does not fit the model ({error}); a run started by an "
            "older vampviz (before its gated layers kept h and g in one parameter) resumes only with that "
            "version: finish it there, or train again into another --out") from None
    if "rng.torch" not in tensors or tensors["rng.torch"].dtype != torch.uint8:
        raise CheckpointError(f"{last} lacks the RNG state; train again into another --out")
    set_rng_state(tensors, next(model.parameters()).device)
    state = _State(**{f.name: saved[f.name] for f in fields(_State)})
    history_file = out / ckpt.HISTORY_FILE
    history = ckpt.check_history(ckpt.read_json(history_file), history_file) if history_file.is_file() else []
    if len(history) < state.epoch:
        raise CheckpointError(f"{history_file} holds {len(history)} epochs but {last} commits {state.epoch}: "
                              "the history was cut short; train again into another --out")
    return state, history[: state.epoch]


def _reconcile(out: Path, model: nn.Module, state: _State, history: list[dict]) -> None:
    """Bring the files a kill may have left behind the commit in line with it (rank 0 only):
    history.json cut to the committed epochs, model.safetensors rewritten when the committed epoch
    is the best one and the best weights on disk are older (`model` holds the committed weights)."""
    history_file = out / ckpt.HISTORY_FILE
    if not history_file.is_file() or len(ckpt.read_json(history_file)) != len(history):
        atomic_write_json(history_file, history)
    if state.best_epoch != state.epoch or state.epoch == 0:
        return
    try:
        behind = ckpt.weights_epoch(out) != state.best_epoch
    except CheckpointError:  # missing, or cut short by a crash of the file system
        behind = True
    if behind:
        ckpt.save_weights(out, model, epoch=state.best_epoch)


def _epoch_order(n: int, epoch: int, seed: int, device: torch.device, world: distributed.World) -> torch.Tensor:
    """The epoch's shuffled example order: one process draws it from the global RNG (saved with the
    checkpoint, so a resumed run continues exactly); several draw the same seeded permutation."""
    if not world.distributed:
        return torch.randperm(n, device=device)
    return distributed.epoch_permutation(n, seed, epoch).to(device)


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    data: DatasetSplits | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a model into the checkpoint folder `out`; see the module docstring.

    `data` defaults to the registry's dataset named in `model_config.dataset`. `should_stop` is
    polled after each epoch (the dashboard's stop button); stopping keeps every checkpoint.

    Under torchrun (WORLD_SIZE > 1 in the environment) every process calls this and they train
    one model with DistributedDataParallel; see `vae_core.distributed` for how the global batch
    `batch_size` is split. Only rank 0 validates, writes `out`, and calls `progress` and
    `should_stop`; every rank returns the same `TrainResult`.
    """
    model_config.validate()
    train_config.validate()
    out = Path(out)
    spec = get_spec(model_config.dataset)
    device = resolve_device(train_config.device)
    data = data if data is not None else load_dataset(model_config.dataset, train_config.data_dir)
    world, device = distributed.init_from_env(device)
    try:
        result = _train(model_config, train_config, out, resume, data, spec, world, device, progress, should_stop)
        world.barrier()  # no rank leaves the group while another still receives its last message
        return result
    finally:
        world.close()


def check_output_folder(out: str | Path, model_config: ModelConfig, resume: bool) -> bool:
    """Whether to resume from `out`; raises CheckpointError if `out` cannot be used: it is a file or
    cannot be written, it holds another model (when resuming), or it holds a checkpoint and
    `resume` is False. Creates nothing."""
    out = Path(out)
    reason = unwritable_reason(out)
    if reason:
        raise CheckpointError(f"cannot train into {out}: {reason}")
    if resume and (out / ckpt.LAST_FILE).is_file():
        saved_config, _ = ckpt.read_config(out)
        if saved_config.to_dict() != model_config.to_dict():
            raise CheckpointError(f"{out} holds a different model ({saved_config.model}/{saved_config.prior}); "
                                  "use another --out or the same settings to resume")
        return True
    if (out / ckpt.CONFIG_FILE).is_file() and not resume:
        raise CheckpointError(f"{out} already holds a checkpoint; pass --resume to continue it or pick another --out")
    return False


def _diverged(what: str, where: str, state: _State, out: Path, advice: str) -> TrainingDivergedError:
    """The one-line error of a NaN/inf loss, saying truthfully what `out` keeps."""
    if state.best_epoch:
        kept = f"the last good checkpoint (epoch {state.best_epoch}) is kept in {out}"
    else:
        kept = f"no epoch had finished, so {out} holds no weights"
    return TrainingDivergedError(f"training diverged: {what} at {where}; {kept}; {advice}")


def _train(model_config, train_config, out, resume, data, spec, world, device, progress, should_stop) -> TrainResult:
    torch.manual_seed(train_config.seed)  # the same initial model on every rank
    model = build_model(model_config, train_images=data.x_train).to(device)
    # fused: one vectorised kernel for the whole update instead of ~10 ops per tensor, same algorithm
    # (benchmarks/speed.py, variant (e): epochs of the paper's model a few percent faster on a CPU)
    fused = device.type in ("cpu", "cuda", "mps")
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr, fused=fused)
    state, history = _State(), []

    if world.on_main(check_output_folder, out, model_config, resume):
        state, history = _restore_last(out, model, optimizer)  # every rank reads; only rank 0 writes
        world.on_main(_reconcile, out, model, state, history)
        for group in optimizer.param_groups:  # a resumed run uses the learning rate it is given now
            group["lr"] = train_config.lr
        if state.epochs_without_improvement >= train_config.patience:  # it had already stopped early
            return TrainResult(out, history, state.best_epoch, state.best_val_loss, True, False)
    world.on_main(ckpt.write_config, out, model_config, asdict(train_config))

    x_train = torch.as_tensor(data.x_train, dtype=torch.float32, device=device)
    n = len(x_train)
    steps = math.ceil(n / train_config.batch_size)
    stopped_early = interrupted = False
    trained = model
    if world.distributed:
        unused = distributed.unused_parameters(model, x_train[:2], beta=1.0)
        trained = distributed.wrap(model, device, find_unused_parameters=bool(unused))
        progress = progress if world.is_main else None
        should_stop = should_stop if world.is_main else None

    for epoch in range(state.epoch + 1, train_config.epochs + 1):
        beta = kl_weight(epoch, train_config.warmup)
        model.train()
        started = time.perf_counter()
        sums = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
        if world.distributed:
            torch.manual_seed(distributed.rank_seed(train_config.seed, epoch, world.rank))
        order = _epoch_order(n, epoch, train_config.seed, device, world)
        for step, batch in enumerate(order.split(train_config.batch_size), start=1):
            local = world.shard(batch)  # the whole batch on one process
            x = x_train[local]
            if spec.dynamic_binarization:
                x = torch.bernoulli(x)
            out_step = trained(x, beta=beta)
            step_sums = world.all_reduce_sum([
                out_step.loss.item() * len(local) if len(local) else 0.0,
                out_step.reconstruction.sum().item(),
                out_step.kl.sum().item(),
            ], device)
            step_loss = step_sums[0] / len(batch)  # the mean over the (global) batch
            if not math.isfinite(step_loss):
                raise _diverged(f"the loss is {step_loss}", f"epoch {epoch}, step {step}", state, out,
                                "try a lower --lr or --normalize-gradients")
            loss = distributed.shard_loss(out_step.loss, lambda: -(out_step.reconstruction - beta * out_step.kl),
                                          len(local), len(batch), world.size)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train_config.normalize_gradients:
                normalize_gradients_(model.parameters())
            optimizer.step()
            for name, value in zip(sums, step_sums):
                sums[name] += value
            if progress and step < steps:
                progress(Progress(epoch, train_config.epochs, step, steps, step_loss, beta))

        def end_epoch() -> tuple[dict, _State, bool, bool]:
            """Validate, record, commit; whether to stop early or because asked (rank 0 only).

            Order matters for a kill at any instant (see the module docstring): history and
            snapshot, then the commit (last.safetensors), then the best weights."""
            model.eval()
            val = elbo_terms(model, data.x_val)
            if not math.isfinite(val["loss"]):
                raise _diverged(f"the validation loss is {val['loss']}", f"epoch {epoch}", state, out,
                                "try a lower --lr")
            record = {
                "epoch": epoch,
                "beta": beta,
                "train_loss": sums["loss"] / n,
                "train_reconstruction": sums["reconstruction"] / n,
                "train_kl": sums["kl"] / n,
                "val_loss": val["loss"],
                "val_reconstruction": val["reconstruction"],
                "val_kl": val["kl"],
                # cheap (one encoder pass): the dashboard plots units switching off over training
                "active_units": active_units(model, data.x_val[:ACTIVE_UNITS_VAL_POINTS]),
                "seconds": time.perf_counter() - started,
            }
            history.append(record)
            state.epoch = epoch
            improved = val["loss"] < state.best_val_loss
            if improved:
                state.best_val_loss, state.best_epoch = val["loss"], epoch
                state.epochs_without_improvement = 0
            elif epoch > train_config.warmup:
                state.epochs_without_improvement += 1
            early = state.epochs_without_improvement >= train_config.patience
            asked = not early and should_stop is not None and should_stop()
            atomic_write_json(out / ckpt.HISTORY_FILE, history)
            if snapshots.is_due(epoch, train_config.snapshot_every, early or asked or epoch == train_config.epochs):
                snapshots.save_snapshot(out, epoch, model)  # for the dashboard's training replay
            _save_last(out, model, optimizer, state)
            if improved:
                ckpt.save_weights(out, model, epoch=epoch)
            if progress:
                progress(Progress(epoch, train_config.epochs, steps, steps, record["train_loss"], beta, record))
            return record, state, early, asked

        # rank 0 decides; the others receive its record, counters and decisions, so all stop together
        record, main_state, stopped_early, interrupted = world.on_main(end_epoch)
        if not world.is_main:
            history.append(record)
            state = main_state
        if stopped_early or interrupted:
            break

    return TrainResult(out, history, state.best_epoch, state.best_val_loss, stopped_early, interrupted)
