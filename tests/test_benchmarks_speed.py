"""benchmarks/speed.py: the authors' re-implementation against vae_core, the optimiser it times,
and the measurements end to end on a tiny model, down to the rendered report."""

from __future__ import annotations

import copy
import itertools
import math
import re
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_config

from benchmarks import authors_reference as authors
from benchmarks import speed_records, speed_report, speed_runner
from benchmarks.speed_runner import threads
from vae_core.evaluate import log_likelihood
from vae_core.models import build_model


@pytest.fixture
def pair():
    """A tiny vae_core VAE + VampPrior (Bernoulli pixels) and the authors' network with its weights."""
    model = build_model(tiny_config(prior="vampprior"))
    return model, authors.AuthorsVampVAE.from_vae_core(model)


@pytest.fixture
def images():
    return (torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(3)) < 0.4).float()


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_the_authors_loss_is_vae_cores_for_the_same_weights_and_noise(pair, images, dtype, tolerance):
    model, reference = (m.to(dtype) for m in pair)
    x = images.to(dtype)
    with torch.no_grad():
        assert model.decoder(model.encoder(x)[0]).abs().max() < math.log(1 / authors.BERNOULLI_CLAMP)  # no clamping
    torch.manual_seed(7)
    ours = model(x, beta=0.3)
    torch.manual_seed(7)  # the same draws: both take one standard normal per latent unit of the batch
    loss, reconstruction, kl = reference.calculate_loss(x.flatten(1), beta=0.3)
    scale = ours.reconstruction.abs().max().item()
    assert (reconstruction - ours.reconstruction).abs().max() <= tolerance * scale
    assert (kl - ours.kl).abs().max() <= tolerance * scale
    assert loss.mean().item() == pytest.approx(ours.loss.item(), rel=tolerance)
    average = reference.calculate_loss(x.flatten(1), beta=0.3, average=True)
    assert all(value.dim() == 0 for value in average)


def test_the_authors_pseudo_inputs_and_mixture_are_the_vampprior(pair):
    model, reference = pair
    pseudo = torch.nn.functional.hardtanh(reference.pseudo_inputs(reference.idle_input), 0.0, 1.0)
    assert torch.allclose(pseudo, model.prior.pseudo_inputs.flatten(1))
    z = torch.randn(9, 3)
    constant = 0.5 * z.shape[1] * math.log(2 * math.pi)  # their log-densities omit it
    assert torch.allclose(reference.log_p_z(z) - constant, model.prior.log_prob(z), atol=1e-5)


def test_the_authors_log_likelihood_estimates_what_vae_cores_does(pair, images):
    model, reference = pair
    points = images[:3]
    theirs = authors.log_likelihood(reference, points, num_samples=2000, batch=100)
    ours = log_likelihood(model, points.numpy(), num_samples=2000)
    assert theirs.shape == ours.shape == (3,)
    assert abs(theirs - ours).max() < 0.2  # two independent estimates of the same log p(x)
    one_pass = authors.log_likelihood(reference, points, num_samples=50, batch=100)  # S <= batch: one pass
    assert abs(one_pass - ours).max() < 1.0


def test_adam_norm_grad_is_adam_on_gradients_divided_by_their_norms():
    """With eps = 0 their update form equals torch's Adam fed the normalised gradients."""
    torch.manual_seed(0)
    weights = [torch.randn(5, 4, requires_grad=True), torch.randn(3, requires_grad=True)]
    twins = [w.detach().clone().requires_grad_() for w in weights]
    theirs = authors.AdamNormGrad(weights, lr=0.01, eps=0.0)
    torch_adam = torch.optim.Adam(twins, lr=0.01, eps=0.0, foreach=False)
    for step in range(4):
        grads = [torch.randn_like(w) * 10 ** step for w in weights]
        for w, twin, g in zip(weights, twins, grads):
            w.grad = g.clone()
            twin.grad = g / (g.norm() + authors.NORM_EPS)
        theirs.step()
        torch_adam.step()
    for w, twin in zip(weights, twins):
        assert torch.allclose(w, twin, atol=1e-6)


def test_the_first_adam_norm_grad_step_moves_each_weight_by_the_learning_rate():
    weight = torch.zeros(6, requires_grad=True)
    weight.grad = torch.tensor([3.0, -1.0, 2.0, -5.0, 0.5, 1.0])
    authors.AdamNormGrad([weight], lr=0.1).step()
    assert torch.allclose(weight, -0.1 * weight.grad.sign(), atol=1e-6)


def test_the_authors_training_loop_trains(pair, images):
    _, reference = pair
    before = copy.deepcopy(reference.state_dict())
    optimizer = authors.AdamNormGrad(reference.parameters(), lr=1e-3)
    loader = authors.train_loader(images, batch_size=10)
    assert authors.train_epoch(reference, optimizer, loader, 1.0, torch.device("cpu")) == 3
    assert authors.train_epoch(reference, optimizer, loader, 1.0, torch.device("cpu"), max_steps=1) == 1
    changed = [name for name, value in reference.state_dict().items() if not torch.equal(value, before[name])]
    assert set(changed) == set(before)  # every parameter moved


@pytest.fixture
def tiny_benchmark(monkeypatch):
    """speed_runner's children on a tiny model: 40 images of 8 x 8, S = 40, small matmuls."""
    def build(device, seed=0):
        torch.manual_seed(seed)
        return build_model(tiny_config(prior="vampprior", components=6)).to(device)

    monkeypatch.setattr(speed_runner, "build", build)
    monkeypatch.setattr(speed_runner, "N_TRAIN", 40)
    monkeypatch.setattr(speed_runner, "IMAGE_SHAPE", (1, 8, 8))
    monkeypatch.setattr(speed_runner, "SAMPLES", 40)
    monkeypatch.setattr(speed_runner, "AUTHORS_LL_BATCH", 10)
    monkeypatch.setattr(speed_runner, "MATMUL_SHAPES", [("small", (8, 16, 8)), ("reference", (12, 16, 8))])
    monkeypatch.setattr(speed_records, "REFERENCE_SHAPE", (12, 16, 8))


def measure(quick: bool) -> dict:
    """Every child of a run (torch.compile's faked: compiling takes tens of seconds)."""
    device = torch.device("cpu")
    args = SimpleNamespace(quick=quick, dataset="random", data_dir=None, rounds=1, eval_points=2, authors_points=1)
    train = speed_runner.child_train(args, device)
    evaluation = speed_runner.child_eval(args, device)
    memory = {what: speed_runner.child_memory(SimpleNamespace(**vars(args), memory=what), device)
              for what in speed_runner.MEMORY_WORKLOADS}
    compiled = None if quick else {"compile_seconds": 30.0, "eager": 1.0, "compiled": 0.9}
    return {"train": train, "compiled": compiled, "evaluation": evaluation, "memory": memory}


INFO = {"cpu": "Test CPU", "cores": 2, "torch": torch.__version__, "threads": 2, "device": "cpu",
        "date": "2026-12-01T00:00:00+00:00", "load_average_start": [2.0, 2.0, 2.0], "load_average_end": [2.1, 2.0, 2.0],
        "note": "two training processes were running"}


def rendered(measured: dict, quick: bool) -> tuple[dict, str]:
    figures = speed_records.derive(INFO, measured["train"], measured["compiled"], measured["evaluation"],
                                   measured["memory"], "quick" if quick else "full")
    return figures, speed_report.render(figures, INFO | {"flags": "--quick" if quick else ""})


def assert_filled(text: str) -> None:
    assert "$" not in text, re.findall(r".{20}\$.{20}", text)  # no placeholder left, none escaped by mistake


def test_a_quick_run_measures_ours_beside_the_authors_and_reports_it(tiny_benchmark):
    with threads(1):
        figures, text = rendered(measure(quick=True), quick=True)
    assert_filled(text)
    keys = [v["key"] for v in figures["train"]["variants"]]
    assert keys[:2] == ["baseline", "authors"] and "split_gates" not in keys
    train, evaluation = figures["train"], figures["eval"]
    assert train["authors_ratio"] == pytest.approx(
        train["authors"]["seconds_per_epoch"] / train["base"]["seconds_per_epoch"])
    assert train["authors"]["flops_per_epoch"] > 0 and evaluation["authors_flops_per_point"] > 0
    assert f"faster than the authors' training loop ({train['authors']['seconds_per_epoch']:.2f} s/epoch)" in text
    assert text.startswith(speed_report.MD_START) and text.endswith(speed_report.MD_END)
    assert "While it ran: two training processes were running." in text
    assert "`python benchmarks/speed.py --quick` on Test CPU (2 cores, 2 torch threads)" in text
    assert "of the one-core bound" in text and "our evaluator" in text  # one thread: its figures are one core's
    metrics = {(r["benchmark"], r["metric"]) for r in figures["records"]}
    assert {("train", "speedup_vs_authors"), ("log_likelihood", "speedup_vs_authors")} <= metrics


def test_a_full_run_reports_every_lever_and_the_one_core_figures(tiny_benchmark, monkeypatch):
    """Every lever measured; the one-thread figures, which a run on several threads adds, are
    copied in from the one-thread run (two threads on a busy 2-core machine take seconds a step)."""
    counts = itertools.count(10**6, 10**6)  # FLOPs faked: the quick run counts them
    monkeypatch.setattr(speed_runner, "count_flops", lambda fn: next(counts))
    with threads(1):
        measured = measure(quick=False)
    variants = {v["key"]: v for v in measured["train"]["variants"]}
    assert {"batch200", "batch1000", "unfused_adam", "split_gates", "threads2"} <= set(variants)
    measured["train"]["variants"] += [variants["baseline"] | {"key": "threads1", "threads": 1},
                                      variants["authors"] | {"key": "authors_threads1", "threads": 1}]
    evaluation = measured["evaluation"]
    evaluation["one_thread_evaluator_cpu_seconds_per_point"] = evaluation["evaluator_cpu_seconds_per_point"]
    evaluation["one_thread_authors_cpu_seconds_per_point"] = evaluation["authors_cpu_seconds_per_point"]
    figures, text = rendered(measured, quick=False)
    assert_filled(text)
    for phrase in ("(c) torch.compile(model)", "(f) h and g of each gated layer as two matmuls", "of the one-core bound",
                   "The authors' loop on one thread", "Where a step of ours spends its time", "always in float64",
                   "`max_rows`", "one core, robust to other jobs (1 thread, CPU time): our evaluator",
                   "the authors' evaluation, 1 point", "faster than the authors' loop"):
        assert phrase in text, phrase
    assert figures["eval"]["one_core"]["speedup"] > 0


def test_a_failed_child_is_reported_not_raised(tiny_benchmark):
    with threads(1):
        measured = measure(quick=True)
    measured["evaluation"] = {"error": "timed out after 900 s"}
    measured["memory"]["eval"] = {"error": "exit 1: boom"}
    _, text = rendered(measured, quick=True)
    assert_filled(text)
    assert "Log-likelihood benchmark failed: timed out after 900 s" in text and "failed: exit 1: boom" in text
    measured["train"] = {"error": "exit 1: no memory"}
    _, text = rendered(measured, quick=True)
    assert "Training benchmark failed: exit 1: no memory" in text and "### Against the targets" not in text


def test_a_run_whose_benchmarks_failed_leaves_the_results_alone(tmp_path, monkeypatch):
    from benchmarks import speed

    results_md, results_json = tmp_path / "RESULTS.md", tmp_path / "results.json"
    results_md.write_text("# Benchmarks\n\ncommitted\n")
    results_json.write_text("[]\n")
    monkeypatch.setattr(speed, "RESULTS_MD", results_md)
    monkeypatch.setattr(speed, "RESULTS_JSON", results_json)
    monkeypatch.setattr(speed, "spawn", lambda *args, **kwargs: {"error": "timed out after 900 s"})
    assert speed.shown_flags(["--quick", "--note", "busy", "--threads", "1", "--note=x y"]) == "--quick --threads 1"
    assert speed.main(["--no-compile"]) == 1
    assert results_md.read_text() == "# Benchmarks\n\ncommitted\n" and results_json.read_text() == "[]\n"
