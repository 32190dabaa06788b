"""The background registry (dashboard.background) that draws autoregressive samples off the page."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dashboard import background, gallery

TIMEOUT = 60


@pytest.fixture
def registry():
    """A registry of its own, so no test waits behind another's computations."""
    return background.BackgroundRegistry()


def test_a_computation_finishes_with_its_result_and_monotonic_progress(registry):
    seen = []

    def compute(progress):
        for done in (1, 2, 5, 3, 8, 10):  # 3 after 5: a page's bar must not go back
            progress(done, 10)
            seen.append(registry.status("key").done)
        return "result"

    first = registry.submit("key", compute, unit="passes")
    assert first.key == "key" and first.unit == "passes"
    status = registry.wait("key", TIMEOUT)
    assert status.state == "finished" and status.result == "result" and status.error is None
    assert seen == [1, 2, 5, 5, 8, 10]
    assert status.fraction == 1.0 and not status.active


def test_the_same_key_reuses_one_computation(registry):
    calls = []
    release = threading.Event()

    def compute(progress):
        calls.append(1)
        release.wait(TIMEOUT)
        return object()

    registry.submit(("prior samples", "ckpt", 16, 0), compute)
    again = registry.submit(("prior samples", "ckpt", 16, 0), compute)  # a second session, while it runs
    assert again.active
    release.set()
    result = registry.wait(("prior samples", "ckpt", 16, 0), TIMEOUT).result
    assert registry.submit(("prior samples", "ckpt", 16, 0), compute).result is result  # and once finished
    assert len(calls) == 1
    assert len(registry.statuses()) == 1


def test_a_failure_is_one_line_and_raised_nowhere(registry):
    def broken(progress):
        raise RuntimeError("the network exploded\nwith a long traceback below")

    registry.submit("broken", broken)  # never raises into the caller
    status = registry.wait("broken", TIMEOUT)
    assert status.state == "failed" and status.result is None
    assert status.error == "RuntimeError: the network exploded"
    # the registry keeps working for every other page, and the failure is kept until forgotten
    assert registry.wait(registry.submit("fine", lambda progress: 42).key, TIMEOUT).result == 42
    assert registry.submit("broken", lambda progress: "retried").state == "failed"
    registry.forget("broken")
    assert registry.wait(registry.submit("broken", lambda progress: "retried").key, TIMEOUT).result == "retried"


def test_computations_run_one_at_a_time_in_order(registry):
    running, overlap, order = [0], [], []
    lock = threading.Lock()

    def compute(name):
        def run(progress):
            with lock:
                running[0] += 1
                overlap.append(running[0])
            order.append(name)
            threading.Event().wait(0.05)
            with lock:
                running[0] -= 1
        return run

    gate = threading.Event()
    registry.submit("gate", lambda progress: gate.wait(TIMEOUT))
    for name in "abc":
        assert registry.submit(name, compute(name)).state == "queued"
    assert "waiting" in background.progress_text(registry.status("a"), "Drawing")
    gate.set()
    registry.wait_all(TIMEOUT)
    assert max(overlap) == 1
    assert sorted(order) == list("abc")


def test_only_the_most_recent_finished_results_are_kept():
    registry = background.BackgroundRegistry(max_finished=2)
    for key in range(4):
        registry.wait(registry.submit(key, lambda progress, key=key: key).key, TIMEOUT)
    registry.submit("last", lambda progress: None)
    registry.wait_all(TIMEOUT)
    assert registry.status(0) is None and registry.status(1) is None
    assert registry.status(3).result == 3


def test_progress_text():
    status = background.TaskStatus("k", "running", 40, 64, "passes")
    assert background.progress_text(status, "Drawing 16 samples") == "Drawing 16 samples: 40 / 64 passes (62%)"
    assert background.progress_text(background.TaskStatus("k", "running", 0, 0, "passes"), "x") == "x: starting…"


def test_pixelcnn_samples_in_the_background(registry, build):
    """The real sampler: one pass per pixel reported, the same seed gives the same images."""
    model = build(model="hvae", architecture="conv", pixel_model="pixelcnn").eval()
    passes = model.likelihood.generation_passes((1, 8, 8))
    assert model.likelihood.autoregressive and passes == 64 and not gallery.decodes_in_one_pass(model)
    seen = []

    def draw(progress):
        def report(done, total):
            progress(done, total)
            seen.append(registry.status("samples").done)
        return gallery.prior_samples(model, 4, seed=3, progress=report)

    registry.submit("samples", draw)
    status = registry.wait("samples", TIMEOUT)
    assert status.state == "finished" and status.total == passes
    assert seen == list(range(1, passes + 1))
    images = status.result
    assert images.shape == (4, 1, 8, 8) and np.isfinite(images).all()
    # the same draw as in this thread; a worker thread may run OpenMP with other thread counts, so
    # its sums can round differently in the last bit
    np.testing.assert_allclose(images, gallery.prior_samples(model, 4, seed=3), rtol=0, atol=1e-5)


def test_reconstructions_report_the_passes_done(build, digits):
    model = build(pixel_model="pixelcnn").eval()
    images = digits.x_test[:11]
    reports = []
    out = gallery.reconstruct(model, images, progress=lambda done, total: reports.append((done, total)))
    assert out.shape == images.shape
    assert reports == [(i, 64) for i in range(1, 65)]  # one pass per pixel of the 8 x 8 images, all at once
    again = gallery.reconstruct(model, images, progress=lambda done, total: None)
    np.testing.assert_array_equal(out, again)  # seeded: the same draw every time
