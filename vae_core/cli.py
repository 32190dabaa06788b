"""Command line: python -m vae_core {train,evaluate,sample,info,download} ...

Every user error (bad argument, missing file, broken checkpoint, unwritable output, diverged
training) ends with a one-line message on stderr and exit code 2, never a traceback. Arguments are
checked before anything is created, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

from . import checkpoint as ckpt
from . import data as datasets
from . import embedded, evaluation_progress, paths, projections, release
from .config import ModelConfig
from .distributed import is_main_process
from .errors import DatasetError, VampvizError
from .evaluate import DEFAULT_SAMPLES, estimate_seconds, evaluate
from .files import unwritable_reason
from .imaging import image_grid, save_png
from .likelihoods import LIKELIHOODS
from .locking import training_lock
from .models import MODELS
from .networks import ARCHITECTURES
from .pixelcnn import PIXEL_MODELS
from .priors import PRIORS
from .timing import format_duration
from .train import TrainConfig, check_output_folder, resolve_device, train


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vampviz", description="VAEs with the VampPrior.")
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("train", help="train a model into a checkpoint folder")
    t.add_argument("--dataset", default="digits", choices=sorted(datasets.DATASETS))
    t.add_argument("--model", default="vae", choices=sorted(MODELS))
    t.add_argument("--prior", default="vampprior", choices=sorted(PRIORS))
    t.add_argument("--architecture", default="mlp", choices=sorted(ARCHITECTURES))
    t.add_argument("--likelihood", choices=sorted(LIKELIHOODS), help="each pixel's distribution (default: the dataset's)")
    t.add_argument("--pixel-model", default=ModelConfig.pixel_model, choices=sorted(PIXEL_MODELS),
                   help="pixelcnn: an autoregressive PixelCNN over p(x|z) (with --model hvae --architecture conv, "
                        "the paper's PixelHVAE)")
    t.add_argument("--components", "-K", type=_positive, default=500, help="pseudo-inputs / mixture components")
    t.add_argument("--latent-dim", type=_positive, default=40, help="z (VAE) or the top layer z2 (HVAE)")
    t.add_argument("--latent-dim-z1", type=_positive, default=40, help="the HVAE's bottom layer z1")
    t.add_argument("--hidden", type=_positive, default=300)
    t.add_argument("--epochs", type=_positive, default=100)
    t.add_argument("--warmup", type=_non_negative, help="KL warm-up epochs (default: 100 as in the paper, "
                   "at most a fifth of --epochs)")
    t.add_argument("--patience", type=_positive, default=50, help="early stopping patience in epochs")
    t.add_argument("--batch-size", type=_positive, default=100)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--normalize-gradients", action="store_true", help="Adam on L2-normalised gradients")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, type=Path, help="checkpoint folder to create")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    t.add_argument("--snapshot-every", type=_non_negative, default=0, metavar="N",
                   help="save pseudo-inputs and samples every N epochs for the dashboard's replay (0: never)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    t.add_argument("--data-dir", help=f"dataset folder (default: ${paths.DATA_DIR_ENV} or ~/.cache/vampviz/data)")

    e = commands.add_parser("evaluate", help="test log-likelihood, ELBO and active units of a checkpoint")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--samples", type=_positive, default=DEFAULT_SAMPLES, help="importance samples per point")
    e.add_argument("--limit", type=_positive, help="evaluate only the first N test images")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--write-metrics", action="store_true",
                   help="write metrics.json even for a partial evaluation (fewer samples or test images); "
                        f"a full one (S >= {DEFAULT_SAMPLES}, every test image) always writes it")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    e.add_argument("--data-dir", help=f"dataset folder (default: ${paths.DATA_DIR_ENV} or ~/.cache/vampviz/data)")
    e.add_argument("--seed", type=int, default=0)

    s = commands.add_parser("sample", help="a PNG grid of samples from the prior")
    s.add_argument("checkpoint", type=Path)
    s.add_argument("--n", type=_positive, default=64)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--scale", type=_positive, default=None, help="pixel repeat (default: enlarge small images)")

    i = commands.add_parser("info", help="describe a checkpoint")
    i.add_argument("checkpoint", type=Path)

    m = commands.add_parser("embed-sample", help="embed test and training images in a checkpoint folder, so the "
                            "dashboard shows it without the dataset")
    m.add_argument("checkpoint", type=Path)
    m.add_argument("--test", type=_positive, default=embedded.DEFAULT_TEST, help="test images to embed")
    m.add_argument("--train", type=_non_negative, default=embedded.DEFAULT_TRAIN, help="training images to embed")
    m.add_argument("--seed", type=int, default=0, help="which images are chosen")
    m.add_argument("--data-dir")

    p = commands.add_parser("project", help="precompute the PCA and UMAP maps of a checkpoint's embedded test images")
    p.add_argument("checkpoint", type=Path)

    c = commands.add_parser("compact", help="drop a checkpoint's resume state and store its weights in float16")
    c.add_argument("checkpoint", type=Path)
    c.add_argument("--float32", action="store_true", help="keep float32 weights (only drop the resume state)")

    b = commands.add_parser("dashboard", help="open the Streamlit dashboard (the shipped checkpoints, plus --checkpoints)")
    b.add_argument("--checkpoints", type=Path, help="another folder of checkpoints to list (and to train into)")
    b.add_argument("--port", type=_positive, help="the server's port (default: Streamlit's, 8501)")
    b.add_argument("--headless", action="store_true", help="serve only: open no browser (e.g. on a remote machine)")

    d = commands.add_parser("download", help="download a dataset's files (needs internet)")
    d.add_argument("dataset", choices=sorted(datasets.DATASETS))
    d.add_argument("--data-dir")
    return parser


def _default_warmup(args) -> int:
    """The paper's 100 epochs, at most a fifth of --epochs; a resumed run keeps the warm-up it was
    started with (a larger --epochs must not stretch the KL schedule of a run half done)."""
    if args.resume and (args.out / ckpt.CONFIG_FILE).is_file():
        saved = ckpt.read_config(args.out)[1].get("warmup")
        if isinstance(saved, int) and not isinstance(saved, bool) and saved >= 0:
            return saved
    return min(100, args.epochs // 5)


def _train(args) -> None:
    from tqdm import tqdm

    resolve_device(args.device)  # an unknown or absent device is refused before anything is created
    config = ModelConfig.for_dataset(
        args.dataset, model=args.model, prior=args.prior, architecture=args.architecture,
        likelihood=args.likelihood, pixel_model=args.pixel_model, latent_dim=args.latent_dim, latent_dim_z1=args.latent_dim_z1,
        hidden=args.hidden, components=args.components,
    ).validate()
    warmup = args.warmup if args.warmup is not None else _default_warmup(args)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup=warmup, patience=args.patience,
        normalize_gradients=args.normalize_gradients, seed=args.seed, device=args.device, data_dir=args.data_dir,
        snapshot_every=args.snapshot_every,
    ).validate()
    check_output_folder(args.out, config, args.resume)  # again under the lock, inside train()
    bar = None

    def show(p):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=p.epochs * p.steps, initial=(p.epoch - 1) * p.steps + p.step - 1, unit="step",
                       desc="train", dynamic_ncols=True)
        postfix = {"epoch": p.epoch, "beta": f"{p.beta:.2f}", "loss": f"{p.loss:.2f}"}
        if p.record:
            postfix["val"] = f"{p.record['val_loss']:.2f}"
        bar.set_postfix(postfix, refresh=False)
        bar.update((p.epoch - 1) * p.steps + p.step - bar.n)

    # one trainer per folder (a dashboard job or another run would interleave checkpoints); under
    # torchrun rank 0 holds the lock for all ranks
    lock = training_lock(args.out) if is_main_process() else contextlib.nullcontext()
    try:
        with lock:
            result = train(config, train_config, args.out, resume=args.resume, progress=show)
    finally:
        if bar is not None:
            bar.close()
    if not is_main_process():  # under torchrun, one line from rank 0 is enough
        return
    how = "stopped early" if result.stopped_early else "finished"
    print(f"{how} after {len(result.history)} epochs; best validation loss {result.best_val_loss:.3f} "
          f"at epoch {result.best_epoch}; checkpoint in {result.path}")


def _is_full_evaluation(samples: int, n_test: int, n_total: int) -> bool:
    """What metrics.json holds unless asked otherwise: the paper's S and every test image."""
    return samples >= DEFAULT_SAMPLES and n_test == n_total


def _evaluate(args) -> None:
    from tqdm import tqdm

    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    config, _ = ckpt.read_config(args.checkpoint)
    model = ckpt.load(args.checkpoint, device=device)
    all_test = datasets.load_dataset(config.dataset, args.data_dir).x_test  # never a folder from config.json
    x_test = all_test[: args.limit]
    if len(x_test) == 0:
        raise DatasetError(f"{config.dataset} has no test images to evaluate")
    key = evaluation_progress.progress_key(args.checkpoint, x_test, args.samples, args.seed, device)
    partial, before, note = evaluation_progress.load(args.checkpoint, key)
    if note:
        print(note, file=sys.stderr)
    done = 0 if partial is None else len(partial.values)
    if done:
        print(f"resuming the interrupted evaluation at image {done:,} of {len(x_test):,}", file=sys.stderr)
    if done < len(x_test):
        seconds = estimate_seconds(model, x_test[done:], args.samples)
        print(f"log p(x) of {len(x_test) - done:,} test images with S={args.samples:,}: about "
              f"{format_duration(seconds)} on {device} (timed on one chunk; --samples and --limit trade "
              "accuracy for time)", file=sys.stderr)
    reason = unwritable_reason(args.checkpoint)
    saver = None if reason else evaluation_progress.Saver(args.checkpoint, key, before)
    if reason:
        print(f"progress is not saved ({reason}): an interrupted evaluation starts over", file=sys.stderr)
    with tqdm(total=len(x_test), initial=done, unit="img", desc=f"log p(x), S={args.samples}",
              disable=args.json) as bar:
        metrics = evaluate(model, x_test, args.samples, datasets.get_spec(config.dataset).input_type,
                           progress=lambda done, total: bar.update(done - bar.n), resume=partial, commit=saver)
    if saver:
        metrics["seconds"] = saver.seconds()
    metrics["test_points"] = "all" if len(x_test) == len(all_test) else f"first {len(x_test)}"
    written = args.write_metrics or _is_full_evaluation(args.samples, len(x_test), len(all_test))
    if written:
        ckpt.write_metrics(args.checkpoint, metrics)
    evaluation_progress.discard(args.checkpoint)
    metrics_file = args.checkpoint / ckpt.METRICS_FILE
    if args.json:
        print(json.dumps(metrics | {"metrics_file": str(metrics_file) if written else None}))
        return
    stderr = metrics["log_likelihood_stderr"]
    print(f"test log-likelihood  {metrics['log_likelihood']:.3f} ± {'n/a' if stderr is None else f'{stderr:.3f}'} "
          f"nats (S={args.samples}, n={len(x_test)} of {len(all_test)})")
    print(f"ELBO                 {metrics['elbo']:.3f}  (reconstruction {metrics['reconstruction']:.3f}, "
          f"KL {metrics['kl']:.3f})")
    print(f"active units         {metrics['active_units']}")
    print(f"KL(q(z) || p(z))     {metrics['aggregated_posterior_kl']:.3f}")
    entropy = metrics["decoder_entropy"]
    print(f"H[p(x|z)]            {entropy['prior']:.3f} nats/image at prior draws (samples), "
          f"{entropy['posterior']:.3f} at posterior draws (reconstructions)")
    if written:
        print(f"metrics written to {metrics_file}")
    else:
        print(f"metrics not written (a partial evaluation: S={args.samples}, {metrics['test_points']} of "
              f"{len(all_test)} test images); pass --write-metrics to keep them")


def _sample(args) -> None:
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name the PNG file to write")
    reason = unwritable_reason(out.parent)
    if reason:
        raise ValueError(f"cannot write {out}: {reason}")
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    model = ckpt.load(args.checkpoint)
    passes = model.likelihood.generation_passes(_dataset_and_shape(args.checkpoint)[1])
    with torch.no_grad(), tqdm(total=passes, unit="pass", desc=f"sampling {args.n} (a pass per pixel)",
                               disable=passes == 1) as bar:
        images = model.sample(args.n, progress=lambda done, total: bar.update(done - bar.n)).numpy()
    scale = args.scale or max(1, 56 // images.shape[-1])
    path = save_png(image_grid(images, scale=scale), out)
    print(f"wrote {args.n} samples to {path}")


def _number(value) -> str:
    return "n/a" if value is None else str(value)


def _info(args) -> None:
    info = ckpt.read_info(args.checkpoint)
    c = info.config
    print(f"{info.path}: {c.model.upper()} with a {c.prior} prior on {c.dataset} {c.input_shape}")
    pixels = "" if c.pixel_model == ModelConfig.pixel_model else f" (pixel model {c.pixel_model})"
    print(f"  architecture {c.architecture}, likelihood {c.likelihood}{pixels}, latent {c.latent_sizes}, "
          f"K={c.components}")
    if info.state != "ready":
        print(f"  state: {info.state} (no {ckpt.WEIGHTS_FILE} yet)")
    scored = [r for r in info.history if r.get("val_loss") is not None and r.get("epoch") is not None]
    if scored:
        best = min(scored, key=lambda r: r["val_loss"])
        print(f"  {info.epochs} epochs; best validation loss {best['val_loss']:.3f} at epoch {best['epoch']}")
    elif info.history:
        print(f"  {info.epochs} epochs")
    for key in ("log_likelihood", "log_likelihood_stderr", "elbo", "active_units", "samples", "n_test",
                "test_points"):
        if key in info.metrics:
            print(f"  {key}: {_number(info.metrics[key])}")


def _download(args) -> None:
    paths = datasets.download(args.dataset, args.data_dir)
    print(f"{args.dataset} is ready: {', '.join(str(p) for p in paths)}")


def _embed_sample(args) -> None:
    path = embedded.write_sample(args.checkpoint, args.test, args.train, args.data_dir, args.seed)
    sample = embedded.read_sample(args.checkpoint, *_dataset_and_shape(args.checkpoint))
    print(f"embedded {len(sample.x_test):,} test and {len(sample.x_train):,} training images "
          f"({path.stat().st_size:,} bytes) in {path}")


def _dataset_and_shape(folder: Path) -> tuple[str, tuple[int, ...]]:
    config, _ = ckpt.read_config(folder)
    return config.dataset, config.input_shape


def _project(args) -> None:
    from tqdm import tqdm

    config, _ = ckpt.read_config(args.checkpoint)
    maps = len(config.latent_sizes) * len(projections.PRECOMPUTED_METHODS)
    with tqdm(desc="project", unit="map", total=maps) as bar:
        def step(what: str) -> None:
            bar.set_postfix_str(what)
            bar.update(1)

        path = release.precompute_projections(args.checkpoint, progress=step)
    print(f"wrote {path}")


def _compact(args) -> None:
    sizes = release.compact(args.checkpoint, "float32" if args.float32 else "float16")
    print(f"{args.checkpoint}: weights {sizes['before']:,} -> {sizes['after']:,} bytes; resume state removed")


# the app behind a server that warms its first page's imports while the browser loads (dashboard/server.py)
DASHBOARD_APP = Path(__file__).resolve().parent.parent / "dashboard" / "server.py"


def dashboard_command(checkpoints: Path | None = None, port: int | None = None, headless: bool = False) -> list[str]:
    """The `streamlit run` command line that opens the dashboard (vae_core itself never imports Streamlit)."""
    command = [sys.executable, "-m", "streamlit", "run", str(DASHBOARD_APP), "--browser.gatherUsageStats", "false",
               "--server.headless", "true" if headless else "false"]
    if port is not None:
        command += ["--server.port", str(port)]
    if checkpoints is not None:
        command += ["--", "--checkpoints", str(Path(checkpoints).expanduser().resolve())]
    return command


def _dashboard(args) -> None:
    import subprocess

    if not DASHBOARD_APP.is_file():
        raise VampvizError(f"the dashboard is not installed beside vae_core ({DASHBOARD_APP} is missing)")
    if args.checkpoints is not None and not args.checkpoints.is_dir():
        raise VampvizError(f"--checkpoints {args.checkpoints}: no such folder")
    code = subprocess.call(dashboard_command(args.checkpoints, args.port, args.headless))
    if code not in (0, -2, 130):  # Ctrl-C ends the server
        raise VampvizError(f"streamlit exited with code {code}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


INTERRUPTED = {  # what a Ctrl-C leaves, by command
    "train": "the last checkpoint is kept (use --resume to continue)",
    "evaluate": "its progress (saved each minute) is kept: run the same command again to go on",
}
COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample, "info": _info, "embed-sample": _embed_sample,
            "project": _project, "compact": _compact, "dashboard": _dashboard, "download": _download}


def console() -> None:
    """The `vampviz` command (`pip install .`): the same commands as `python -m vae_core`."""
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (VampvizError, ValueError) as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a file the command reads or writes: permissions, a full disk
        where = f" {error.filename}" if error.filename else ""
        print(f"error: cannot access{where}: {error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {INTERRUPTED.get(args.command, 'nothing was written')}", file=sys.stderr)
        return 130
    return 0
