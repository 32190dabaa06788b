"""Every page on every shipped paper checkpoint with no dataset anywhere: the embedded sample serves.

The paper's checkpoints carry 2,000 test and 5,000 training images (`vampviz embed-sample`); with
$VAMPVIZ_DATA_DIR pointing at an empty folder and a fresh disk cache each page must render from
them and say so. A damaged sample stops the data pages with one line and leaves the others working.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.page_helpers import SHIPPED, image_count, open_page, shipped_paper_checkpoints
from vae_core import embedded, paths

PAPER = shipped_paper_checkpoints()
if not PAPER:
    pytest.skip("no shipped checkpoint carries an embedded sample: run `bash checkpoints/make_checkpoints.sh paper`",
                allow_module_level=True)

MODEL_PAGES = ("models", "replay")  # what a checkpoint's weights and history show, without images
DATA_PAGES = ("pseudo_inputs", "latent_space", "active_units", "prior_vs_posterior", "samples", "probe")
EMBEDDED = "embedded in the checkpoint"


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory):
    """The disk cache starts empty for this module ($VAMPVIZ_DATA_DIR is an empty folder: conftest.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))
        yield


def texts(at) -> list[str]:
    return [e.value for kind in (at.caption, at.markdown, at.info) for e in kind]


@pytest.mark.parametrize("page", MODEL_PAGES + DATA_PAGES)
@pytest.mark.parametrize("name", PAPER)
def test_page_renders_from_the_embedded_sample(name, page):
    at = open_page(None if page == "models" else page, name)
    assert not at.error, [e.value for e in at.error]
    shown = texts(at)
    if page in DATA_PAGES and not any("no components" in t for t in shown):  # a standard prior has no pseudo-inputs
        assert any(EMBEDDED in t for t in shown), f"{page} does not say it shows the embedded sample"
    if page == "latent_space":  # the shipped UMAP map, at once
        assert any(t.startswith("UMAP was fitted") and "Precomputed in the checkpoint." in t for t in shown)


def test_compare_opens_on_a_shipped_pair_measured_on_its_sample():
    datasets = {n: json.loads((SHIPPED / n / "config.json").read_text())["model"]["dataset"] for n in PAPER}
    pairs = [d for d in dict.fromkeys(datasets.values()) if list(datasets.values()).count(d) >= 2]
    if not pairs:
        pytest.skip("no dataset has two shipped paper checkpoints")
    at = open_page("compare")
    (table,) = at.dataframe
    assert {datasets.get(n) for n in table.value["checkpoint"]} <= set(pairs)  # a paper pair, not the digits
    assert not at.error, [e.value for e in at.error]
    assert any(EMBEDDED in t for t in texts(at))
    assert image_count(at) >= 2


# a VampPrior checkpoint (its pseudo-inputs page needs images too) and a standard-prior one
DAMAGED = sorted({next((n for n in PAPER if n.endswith("vampprior")), PAPER[0]), PAPER[0]})


@pytest.fixture(scope="module", params=DAMAGED)
def damaged(request, tmp_path_factory):
    """A copy of a shipped paper checkpoint whose sample.safetensors has lost its second half."""
    root = tmp_path_factory.mktemp("damaged")
    target = root / request.param
    shutil.copytree(SHIPPED / request.param, target)
    sample = target / embedded.SAMPLE_FILE
    data = sample.read_bytes()
    sample.write_bytes(data[: len(data) // 2])
    return target


@pytest.mark.parametrize("page", DATA_PAGES)
def test_a_damaged_sample_stops_data_pages_with_one_line(damaged, page):
    at = open_page(page, user_dir=str(damaged.parent), checkpoint_path=str(damaged))
    if page == "pseudo_inputs" and any("no components" in t for t in texts(at)):
        return  # a standard prior's page stops before it needs images
    (error,) = at.error
    assert "damaged" in error.value and "\n" not in error.value.strip()


@pytest.mark.parametrize("page", MODEL_PAGES)
def test_a_damaged_sample_leaves_model_pages_working(damaged, page):
    at = open_page(None if page == "models" else page, user_dir=str(damaged.parent), checkpoint_path=str(damaged))
    assert not at.error, [e.value for e in at.error]


def test_a_damaged_sample_still_shows_prior_samples(damaged):
    at = open_page("samples", user_dir=str(damaged.parent), checkpoint_path=str(damaged))
    assert image_count(at) >= 1 and len(at.error) == 1
