"""The Compare priors builders: table, best cells, claim notes, shared-scale latent maps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config

from dashboard import compare
from dashboard.compare import ACTIVE, AGG_KL, ELBO, KL, LL, SAMPLE_H


def metrics(ll, elbo, kl, active, agg, stderr=0.2, samples_entropy=30.0) -> dict:
    return {"log_likelihood": ll, "log_likelihood_stderr": stderr, "elbo": elbo, "kl": kl,
            "active_units": active, "aggregated_posterior_kl": agg,
            "decoder_entropy": None if samples_entropy is None else {"prior": samples_entropy, "posterior": 20.0}}


def table(*specs) -> pd.DataFrame:
    """specs: (name, prior, metrics dict) -> the comparison table."""
    return compare.comparison_table([compare.metrics_row(name, tiny_config(prior=prior), m) for name, prior, m in specs])


@pytest.fixture
def four() -> pd.DataFrame:
    return table(
        ("standard", "standard", metrics(-23.0, -23.7, 5.1, {"z": 12}, 0.90, samples_entropy=31.0)),
        ("mog", "mog", metrics(-22.7, -23.8, 5.5, {"z": 15}, 1.22, samples_entropy=29.0)),
        ("vamp", "vampprior", metrics(-22.4, -22.8, 5.4, {"z": 15}, 0.91, samples_entropy=27.5)),
        ("vamp-data", "vampprior-data", metrics(-22.5, -23.0, 4.9, {"z": 14}, 0.63, samples_entropy=28.0)),
    )


def test_best_mask_picks_the_right_cells_and_direction(four):
    mask = compare.best_mask(four)
    best = {column: four.loc[mask[column], "checkpoint"].tolist() for column in mask if mask[column].any()}
    assert best == {LL: ["vamp"], ELBO: ["vamp"], ACTIVE: ["mog", "vamp"], AGG_KL: ["vamp-data"],  # a tie: both
                    SAMPLE_H: ["vamp"]}
    assert not mask[KL].any() and not mask["checkpoint"].any()  # the KL term is a trade-off, never "best"


def test_best_mask_ignores_missing_values():
    frame = table(("a", "standard", metrics(None, -20.0, 1.0, {}, None, samples_entropy=None)),
                  ("b", "vampprior", metrics(-30.0, -25.0, 1.0, {"z": 3}, 2.0)))
    mask = compare.best_mask(frame)
    assert mask[LL].tolist() == [False, True] and mask[ACTIVE].tolist() == [False, True]
    assert mask[ELBO].tolist() == [True, False]
    empty = table(("a", "standard", metrics(None, None, None, {}, None, samples_entropy=None)))
    assert not compare.best_mask(empty).to_numpy().any()


def test_styled_table_highlights_exactly_the_best_cells(four):
    styler = compare.styled_table(four)
    styler._compute()  # fills .ctx: {(row, col): [(property, value), ...]} for styled cells
    styled = {(r, four.columns[c]) for (r, c), props in styler.ctx.items() if any(v for _, v in props)}
    mask = compare.best_mask(four)
    assert styled == {(r, c) for c in four.columns for r in four.index if mask.loc[r, c]}
    html = styler.to_html()
    assert "−" not in html and "-22.40" in html  # numbers formatted, not highlighted as text


def test_metrics_row_sums_layers_and_fills_gaps_from_computed():
    config = tiny_config(model="hvae", prior="vampprior")
    row = compare.metrics_row("h", config, {"elbo": -1.0, "active_units": {"z1": 2, "z2": 3}},
                              {"log_likelihood": -2.0, "elbo": -9.0, "computed": "ll computed here"})
    assert row[ACTIVE] == 5 and row["latent"] == "z1=2 / z2=3" and row["K"] == 5
    assert row[LL] == -2.0 and row[ELBO] == -1.0  # metrics.json wins over a recomputation
    assert row["source"] == "ll computed here"
    assert compare.metrics_row("s", tiny_config(), {})["K"] is None


def test_missing_metrics_lists_absent_and_null_keys():
    assert compare.missing_metrics({}) == list(compare.METRIC_KEYS)
    full = metrics(-1.0, -1.0, 1.0, {"z": 1}, 0.1)
    assert compare.missing_metrics(full) == []
    assert compare.missing_metrics(full | {"kl": None}) == ["kl"]


def test_compute_missing_metrics_on_a_tiny_model(build, small_digits):
    model = build(prior="vampprior").eval()
    out = compare.compute_missing_metrics(model, small_digits.x_test, list(compare.METRIC_KEYS), ll_samples=8,
                                          max_images=20)
    for key in ("log_likelihood", "log_likelihood_stderr", "elbo", "kl", "aggregated_posterior_kl"):
        assert math.isfinite(out[key]), key
    assert out["log_likelihood"] < 0 and set(out["active_units"]) == {"z"}
    assert set(out["decoder_entropy"]) == {"prior", "posterior"}
    assert all(0 < h < 64 * math.log(2) for h in out["decoder_entropy"].values())  # 64 Bernoulli pixels
    assert "20 test images" in out["computed"] and "8 importance samples" in out["computed"]
    only = compare.compute_missing_metrics(model, small_digits.x_test, ["kl"], max_images=10)
    assert set(only) == {"kl", "computed"}


def test_mixed_datasets_message():
    assert compare.mixed_datasets_message({"a": "digits", "b": "digits"}) is None
    message = compare.mixed_datasets_message({"a": "digits", "b": "caltech101", "c": "digits"})
    assert "different datasets" in message and "digits: a, c" in message and "caltech101: b" in message


def test_claim_notes_say_what_shows_and_what_does_not(four):
    notes = compare.claim_notes(four)
    assert notes[0].startswith("✅") and "`vamp`" in notes[0] and "0.60 nats above" in notes[0]
    assert notes[1].startswith("✅") and "keeps 15 units active, the standard prior 12" in notes[1]
    assert notes[2].startswith("✅") and "`vamp-data`" in notes[2]
    assert notes[3].startswith("✅ **Sharper samples**") and "`vamp`" in notes[3] and "27.50" in notes[3]
    assert len(notes) == 4

    worse = table(("standard", "standard", metrics(-20.0, -21.0, 5.0, {"z": 20}, 0.5)),
                  ("vamp", "vampprior", metrics(-21.0, -22.0, 5.0, {"z": 20}, 0.9)))
    notes = compare.claim_notes(worse)
    assert notes[0].startswith("❌") and "not a VampPrior" in notes[0]
    assert notes[1].startswith("➖") and "both keep 20" in notes[1]
    assert notes[2].startswith("❌") and notes[3].startswith("❌ **Sharper samples**")  # 30.00 each: not sharper
    unmeasured = table(("standard", "standard", metrics(-20.0, -21.0, 5.0, {"z": 20}, 0.5, samples_entropy=None)),
                       ("vamp", "vampprior", metrics(-21.0, -22.0, 5.0, {"z": 20}, 0.9)))
    assert compare.claim_notes(unmeasured)[-1].startswith("👀 **Samples**")
    grey = compare.claim_notes(four, binary_pixels=False)  # the entropy is no blur measure for grey pixels
    assert grey[-1].startswith("👀 **Samples**") and not any("Sharper" in note for note in grey)
    assert not compare.best_mask(four, compare.scored_columns(False))[SAMPLE_H].any()
    assert compare.claim_notes(table(("s", "standard", metrics(-1.0, -1.0, 1.0, {"z": 1}, 0.1)),
                                     ("m", "mog", metrics(-1.0, -1.0, 1.0, {"z": 1}, 0.1))))[0].startswith("ℹ️")


def test_claim_notes_compare_priors_on_the_same_model_only():
    """A VAE pair beside an HVAE with the standard prior alone: the notes speak of the VAE pair (the
    HVAE's 63 units or its LL are not set against the VAE's VampPrior) and name the HVAE as left out."""
    rows = [compare.metrics_row("vae-standard", tiny_config(prior="standard"), metrics(-89.6, -96.0, 29.4, {"z": 39}, 22.0)),
            compare.metrics_row("vae-vamp", tiny_config(prior="vampprior"), metrics(-86.3, -91.8, 27.9, {"z": 40}, 20.3)),
            compare.metrics_row("hvae-standard", tiny_config(model="hvae", prior="standard"),
                                metrics(-86.4, -92.8, 29.4, {"z1": 38, "z2": 25}, 9.7))]
    notes = compare.claim_notes(compare.comparison_table(rows))
    assert notes[0].startswith("**VAE · z=3** (`vae-standard`, `vae-vamp`)")
    assert "3.30 nats above the standard prior (−89.60)" in notes[1]
    assert "keeps 40 units active, the standard prior 39" in notes[2]
    assert notes[-1].startswith("ℹ️ **HVAE · z1=2 / z2=3** (`hvae-standard`)") and "same model only" in notes[-1]
    assert not any("63" in note or "9.7" in note for note in notes)
    paired = rows + [compare.metrics_row("hvae-vamp", tiny_config(model="hvae", prior="vampprior"),
                                         metrics(-84.4, -90.0, 28.0, {"z1": 40, "z2": 30}, 8.0))]
    notes = compare.claim_notes(compare.comparison_table(paired))
    heading = notes.index("**HVAE · z1=2 / z2=3** (`hvae-standard`, `hvae-vamp`):")
    assert "2.00 nats above the standard prior (−86.40)" in notes[heading + 1]
    assert "keeps 70 units active, the standard prior 63" in notes[heading + 2]


def test_short_names_drop_the_common_prefix():
    assert compare.short_names(["digits-vae-standard", "digits-vae-vampprior", "digits-vae-vampprior-data"]) == [
        "standard", "vampprior", "vampprior-data"]
    assert compare.short_names(["one"]) == ["one"]


def test_latent_maps_share_one_range_and_one_legend():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    maps = {"narrow": {"points": rng.normal(0, 0.1, (30, 2))},
            "wide": {"points": rng.normal(0, 3.0, (30, 2)), "components": rng.normal(5, 1, (4, 2))},
            "other": {"points": rng.normal(1, 1.0, (30, 2)), "components": rng.normal(0, 1, (4, 2))}}
    fig = compare.latent_maps_figure(maps, labels)
    ranges = {name: tuple(fig.layout[name].range) for name in ("xaxis", "yaxis", "xaxis2", "yaxis2", "xaxis3", "yaxis3")}
    assert len(set(ranges.values())) == 1, ranges  # the same range on every axis of every panel
    low, high = ranges["xaxis"]
    everything = np.concatenate([m[k] for m in maps.values() for k in m])
    assert low < everything.min() and high > everything.max()  # nothing clipped
    assert [a.text for a in fig.layout.annotations] == ["narrow", "wide", "other"]
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["label 0", "label 1", "label 2", "components"]  # each entry once
    assert sum(len(t.x) for t in fig.data if t.name.startswith("label")) == 3 * 30
    assert {t.xaxis for t in fig.data} == {"x", "x2", "x3"}


def test_latent_maps_of_many_points_are_drawn_with_webgl():
    rng = np.random.default_rng(0)
    two = {name: {"points": rng.normal(size=(400, 2)), "components": rng.normal(size=(100, 2))} for name in "ab"}
    assert {t.type for t in compare.latent_maps_figure(two).data} == {"scatter"}  # 1,000 markers
    two["b"]["components"] = rng.normal(size=(101, 2))
    assert {t.type for t in compare.latent_maps_figure(two).data} == {"scattergl"}


def test_shared_limits_cover_all_sets():
    low, high = compare.shared_limits([np.array([[0.0, 1.0]]), None, np.array([[-2.0, 4.0]])])
    assert low < -2.0 and high > 4.0
    assert compare.shared_limits([np.zeros((3, 2))]) == (-1.0, 1.0)  # a degenerate set still gets a range


def test_activity_curves_names():
    curves = compare.activity_curves({"vae": {"z": [1.0, 0.0]}, "hvae": {"z1": [1.0], "z2": [0.5]}})
    assert list(curves) == ["vae", "hvae · z1", "hvae · z2"]
