"""dashboard.latent_map: the latent scatter, thumbnails, picked points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dashboard import latent_map
from vae_core import paths
from vae_core.config import ModelConfig
from vae_core.models import build_model


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own cache folder: nothing is written under the real home."""
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def points():
    return np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)


def tiny_model(prior="vampprior", latent_dim=2, components=5, model="vae", seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(model=model, prior=prior, input_shape=(1, 8, 8), latent_dim=latent_dim,
                         latent_dim_z1=3, hidden=16, components=components)
    return build_model(config).eval()


def images(n=40, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)


def test_latent_scatter_has_one_trace_per_label_plus_overlays():
    rng = np.random.default_rng(0)
    coords, labels = rng.normal(size=(30, 2)), np.repeat([0, 1, 2], 10)
    fig = latent_map.latent_scatter_figure(coords, labels, hover_texts=latent_map.text_thumbnails(images(30)), components=rng.normal(size=(4, 2)),
                                       prior_samples=rng.normal(size=(9, 2)), axis_titles=("PC 1", "PC 2"))
    names = [t.name for t in fig.data]
    assert names == ["prior samples (9)", "label 0", "label 1", "label 2", "pseudo-inputs (4)"]
    assert fig.data[-1].marker.symbol == "x-thin" and fig.data[-1].marker.color == "black"
    assert fig.data[0].marker.opacity < 1
    assert sum(len(t.x) for t in fig.data[1:4]) == 30
    np.testing.assert_array_equal(np.asarray(fig.data[2].customdata)[:, 0], np.arange(10, 20))  # test indices
    assert "█" in fig.data[1].text[0] or "░" in fig.data[1].text[0]
    assert fig.layout.xaxis.title.text == "PC 1"


def test_latent_scatter_without_labels_or_overlays():
    fig = latent_map.latent_scatter_figure(np.zeros((5, 2)))
    assert [t.name for t in fig.data] == ["test images"]


def test_a_map_of_many_points_draws_them_with_webgl():
    rng = np.random.default_rng(0)
    small = latent_map.latent_scatter_figure(rng.normal(size=(600, 2)), components=rng.normal(size=(400, 2)))
    big = latent_map.latent_scatter_figure(rng.normal(size=(600, 2)), components=rng.normal(size=(400, 2)),
                                           prior_samples=rng.normal(size=(1, 2)))  # 1,001 markers
    assert {t.type for t in small.data} == {"scatter"}
    assert {t.type for t in big.data} == {"scattergl"}
    assert big.data[1].customdata[0] == [0, 0]  # a clicked point still names its test image


def test_selected_point_reads_customdata():
    assert latent_map.selected_point(None) is None
    assert latent_map.selected_point({"points": [{"x": 0}]}) is None
    assert latent_map.selected_point({"points": [{"customdata": [7, 0]}]}) == ("test", 7)
    assert latent_map.selected_point({"points": [{"customdata": [3, 1]}]}) == ("component", 3)
    assert latent_map.selected_point({"points": [{"customdata": {"0": 9, "1": 0}}]}) == ("test", 9)


def test_text_thumbnail_keeps_the_image_shape():
    image = np.zeros((1, 8, 8), np.float32)
    image[0, :, 0] = 1.0
    rows = latent_map.text_thumbnails(image[None])[0].split("<br>")
    assert len(rows) == 8 and all(row.startswith("██") for row in rows)
    assert len(latent_map.text_thumbnails(np.zeros((1, 1, 28, 28)))[0].split("<br>")) == 14


def test_text_thumbnails_of_a_batch_are_each_images_own():
    batch = np.zeros((3, 1, 4, 4), np.float32)
    batch[1] = 1.0
    batch[2, 0, 0, 0] = 0.5  # one mid-grey cell
    blank, full, grey = latent_map.text_thumbnails(batch)
    assert blank == "<br>".join(["\u00a0" * 8] * 4) and full == "<br>".join(["█" * 8] * 4)
    assert grey.startswith("▒▒\u00a0") and grey.count("▒") == 2  # 0.5 of five levels: the middle one
    assert latent_map.text_thumbnails(batch[2:]) == [grey]  # each image's own, whatever the batch


def test_point_images():
    x = images(6)
    pictures, captions = latent_map.point_images(tiny_model(), "test", 2, x)
    assert pictures.shape == (2, 1, 8, 8) and len(captions) == 2
    np.testing.assert_array_equal(pictures[0], x[2])
    pictures, _ = latent_map.point_images(tiny_model(), "component", 1, x)
    assert pictures.shape == (2, 1, 8, 8)  # the pseudo-input and the decoded component mean
    pictures, _ = latent_map.point_images(tiny_model(prior="mog"), "component", 1, x)
    assert pictures.shape == (1, 1, 8, 8)

