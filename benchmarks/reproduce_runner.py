"""Train and evaluate the cells of the reproduction grid, one resumable run folder each.

A folder whose metrics.json holds the same settings is skipped; a partly trained one continues
(`resume=True`), also when a later call raises the epoch budget; after every run the report is
rewritten (benchmarks/reproduce_report.py).
"""

from __future__ import annotations

import datetime as dt
import time
import traceback
from pathlib import Path

from benchmarks.report_files import describe_device
from benchmarks.reproduce_grid import (
    DATASETS,
    HIDDEN,
    LATENT,
    MODELS,
    PAPER_BATCH,
    PAPER_LR,
    run_name,
    test_points,
)
from benchmarks.reproduce_report import publish
from vae_core import checkpoint as ckpt
from vae_core.config import ModelConfig
from vae_core.data import get_spec, load_dataset
from vae_core.evaluate import evaluate
from vae_core.train import TrainConfig, resolve_device, train

# Training settings that must not change when a run is resumed (the epoch budget may grow).
FIXED_TRAIN_KEYS = ("batch_size", "lr", "warmup", "patience", "normalize_gradients", "seed")


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def configs(args, dataset: str, model: str, prior: str) -> tuple[ModelConfig, TrainConfig]:
    model_config = ModelConfig.for_dataset(
        dataset, prior=prior, latent_dim=LATENT, latent_dim_z1=LATENT, hidden=HIDDEN,
        components=args.components[dataset], **MODELS[model])
    train_config = TrainConfig(
        epochs=args.epochs[dataset], batch_size=PAPER_BATCH, lr=PAPER_LR, warmup=args.warmup[dataset],
        patience=args.patience, normalize_gradients=not args.no_normalize_gradients, seed=args.seed,
        device=args.device, data_dir=args.data_dir,
    )
    return model_config, train_config


def settings(model_config: ModelConfig, train_config: TrainConfig, samples: int, n_test: int,
             selection: str) -> dict:
    """What a finished run's metrics must match to be skipped."""
    return {
        "model": model_config.to_dict(),
        "train": {k: getattr(train_config, k) for k in ("epochs", *FIXED_TRAIN_KEYS)},
        "samples": samples,
        "n_test": n_test,
        "test_selection": selection,
    }


def training_finished(out: Path, train_config: TrainConfig) -> bool:
    """Whether the folder's training reached its budget or stopped early (no more epochs to run)."""
    state = ckpt.read_train_state(out)
    if state is None or not (out / ckpt.WEIGHTS_FILE).is_file():
        return False
    return state["epoch"] >= train_config.epochs or state["epochs_without_improvement"] >= train_config.patience


def check_resumable(out: Path, train_config: TrainConfig) -> None:
    """Refuse to continue a run that was started with other fixed training settings."""
    if not (out / ckpt.CONFIG_FILE).is_file():
        return
    _, saved = ckpt.read_config(out)
    changed = [k for k in FIXED_TRAIN_KEYS if k in saved and saved[k] != getattr(train_config, k)]
    if changed:
        raise ckpt.CheckpointError(
            f"{out} was trained with other settings ({', '.join(f'{k}={saved[k]!r}' for k in changed)}); "
            "pass the same flags, another --runs-dir, or delete the folder")


def run_one(args, index: int, total: int, dataset: str, model: str, prior: str, data_cache: dict) -> dict:
    """Train (or resume) and evaluate one cell; its metrics, also written to its folder."""
    name = run_name(dataset, model, prior)
    out = args.runs_dir / name
    model_config, train_config = configs(args, dataset, model, prior)
    if dataset not in data_cache:
        data_cache[dataset] = load_dataset(dataset, args.data_dir)
    data = data_cache[dataset]
    x_test, selection = test_points(dataset, data.x_test, args.test_limit[dataset])
    wanted = settings(model_config, train_config, args.samples, len(x_test), selection)

    metrics_path = out / ckpt.METRICS_FILE
    if metrics_path.is_file():
        old = ckpt.read_json(metrics_path)
        if old.get("reproduce", {}).get("settings") == wanted and "log_likelihood_per_point" in old:
            log(f"[{index}/{total}] {name}: done before with the same settings, skipped")
            return old

    check_resumable(out, train_config)
    device = resolve_device(args.device)
    if training_finished(out, train_config):
        log(f"[{index}/{total}] {name}: training already finished, evaluating")
    else:
        resume = (out / ckpt.LAST_FILE).is_file()
        log(f"[{index}/{total}] {name}: {'resuming' if resume else 'training'} on {device} "
            f"(epochs {train_config.epochs}, warm-up {train_config.warmup}, K {model_config.components})")

        def progress(p):
            if p.record:
                r = p.record
                log(f"  {name} epoch {p.epoch}/{p.epochs} beta {p.beta:.2f} train {r['train_loss']:.2f} "
                    f"val {r['val_loss']:.2f} ({r['seconds']:.1f} s)")

        result = train(model_config, train_config, out, resume=resume, data=data, progress=progress)
        how = "stopped early" if result.stopped_early else "finished"
        log(f"  {name}: {how} after {len(result.history)} epochs, best validation loss "
            f"{result.best_val_loss:.2f} at epoch {result.best_epoch}")

    history = ckpt.read_json(out / ckpt.HISTORY_FILE)
    model_obj = ckpt.load(out, device)
    log(f"  {name}: evaluating on {len(x_test)} test points ({selection}), S = {args.samples}")
    last = [0.0]

    def eval_progress(done, n):
        if done == n or done / n >= last[0] + 0.25:
            last[0] = done / n
            log(f"  {name}: log-likelihood {done}/{n}")

    metrics = evaluate(model_obj, x_test, args.samples, get_spec(dataset).input_type, progress=eval_progress,
                       per_point=True)
    train_seconds = sum(r["seconds"] for r in history)
    state = ckpt.read_train_state(out)
    metrics["reproduce"] = {
        "settings": wanted,
        "epochs": len(history),
        "best_epoch": state["best_epoch"],
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / max(1, len(history)),
        "eval_seconds": metrics["seconds"],
        "n_test_total": len(data.x_test),
        "device": describe_device(device),
        "date": dt.date.today().isoformat(),
    }
    ckpt.write_metrics(out, metrics)
    unit = DATASETS[dataset]["unit"]
    ll = f"{metrics['bits_per_dim']:.3f} bits/dim" if unit == "bits/dim" else f"{metrics['log_likelihood']:.2f} nats"
    log(f"  {name}: test LL {ll} (stderr {metrics['log_likelihood_stderr']:.2f} nats), ELBO {metrics['elbo']:.2f}, "
        f"active units {metrics['active_units']}, eval {metrics['seconds']:.0f} s")
    return metrics


def report(args) -> bool:
    """Rewrite results.json and RESULTS.md from args.runs_dir (unless --no-report); whether it did."""
    if args.no_report:
        return True
    done, message = publish(args.runs_dir, args.compare_runs_dir, args.replace_report, args.merge_report)
    log(message)
    return done


def run_grid(args, cells: list[tuple[str, str, str]]) -> int:
    """Every cell in turn, the report rewritten after each; the exit status."""
    started = time.perf_counter()
    failures = []
    data_cache: dict = {}
    for index, (dataset, model, prior) in enumerate(cells, start=1):
        try:
            run_one(args, index, len(cells), dataset, model, prior, data_cache)
        except KeyboardInterrupt:
            log("interrupted; finished runs are kept and every run resumes where it stopped")
            report(args)
            return 130
        except Exception as error:  # noqa: BLE001 - one broken cell must not stop the grid
            failures.append(run_name(dataset, model, prior))
            log(f"  {run_name(dataset, model, prior)} FAILED: {error}")
            traceback.print_exc()
        report(args)
    log(f"grid done in {(time.perf_counter() - started) / 60:.1f} min"
        + (f"; failed: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0
