"""The "Reproduction" section of benchmarks/RESULTS.md, from the records of finished runs.

The prose lives in benchmarks/templates/reproduction.md; this module computes what fills it: the
table rows, the claims with their paired errors, and the reasons our numbers differ from the paper's.
"""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks.report_files import (
    RESULTS_JSON,
    RESULTS_MD,
    fill,
    read_records,
    recorded,
    replace_section,
)
from benchmarks.reproduce_grid import (
    CALTECH_VAMPPRIOR_NOTE,
    CPU_BUDGET_COMMAND,
    DATASETS,
    GPU_COMMAND,
    GRID,
    LATENT,
    PAPER_EPOCHS,
    PAPER_TABLE2,
    PAPER_WARMUP,
    model_title,
    run_name,
)
from benchmarks.reproduce_records import (
    CELL,
    KIND,
    collect_records,
    compare,
    gain_stderr,
    ours_in_paper_unit,
    recorded_cells,
    stderr_in_unit,
    write_results_json,
)

SECTION_START = "<!-- reproduction:start -->"
SECTION_END = "<!-- reproduction:end -->"
MERGED_START = "<!-- reproduction-merged:start -->"  # the cells added with --merge-report
MERGED_END = "<!-- reproduction-merged:end -->"
TEMPLATE = "reproduction"


def fmt(value, unit: str) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if unit == "bits/dim" else f"{value:.2f}"


def signed(value: float, unit: str) -> str:
    return ("+" if value >= 0 else "-") + fmt(abs(value), unit)


def units(active: dict) -> str:
    return "+".join(str(v) for v in active.values()) if len(active) > 1 else str(next(iter(active.values())))


def total_units(active: dict) -> int:
    return sum(active.values())


def _title(dataset: str) -> str:
    return DATASETS[dataset]["title"]


def claim_rows(records: list[dict]) -> list[tuple[str, str, str]]:
    """The two claims per (dataset, model): (1) VampPrior beats the standard prior in test LL,
    (2) VampPrior has more active units. Both priors are evaluated on the same test points."""
    rows = []
    for pair in compare(records, "vampprior"):
        label = f"{_title(pair['dataset'])}, {model_title(pair['model'])}"
        if pair["skip"]:
            rows.append((label, pair["skip"], pair["skip"]))
            continue
        vamp, std, unit = pair["new"], pair["base"], pair["new"]["unit"]
        verdict = "**holds**" if pair["gain"] > 0 else "**fails**"
        if abs(pair["gain"]) < pair["noise"]:
            verdict += " (within noise)"
        ll = (f"{verdict}: {fmt(ours_in_paper_unit(pair['dataset'], vamp), unit)} vs "
              f"{fmt(ours_in_paper_unit(pair['dataset'], std), unit)} {unit}, {signed(pair['gain'], unit)} "
              f"for VampPrior (2σ ≈ {fmt(pair['noise'], unit)}{'' if pair['paired'] else ', unpaired'})")
        ua, ub = total_units(vamp["active_units"]), total_units(std["active_units"])
        verdict = "**holds**" if ua > ub else "**fails**" if ua < ub else "**tie**"
        au = f"{verdict}: {units(vamp['active_units'])} vs {units(std['active_units'])} of {LATENT * len(vamp['active_units'])}"
        rows.append((label, ll, au))
    return rows


def claim_summary(records: list[dict]) -> str:
    """What the claims table adds up to, in words computed from the records."""
    lines = []
    pairs = [p for p in compare(records, "vampprior") if not p["skip"]]
    if pairs:
        n = len(pairs)
        wins = sum(p["gain"] > 0 for p in pairs)
        clear = sum(p["gain"] > p["noise"] for p in pairs)
        chance = sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n
        sign = (f"; if the {n} comparisons were independent coin flips, {wins} or more wins would have "
                f"probability {chance:.3f}") if wins > n / 2 else ""
        lines.append(f"- Claim (1): the VampPrior has the better test LL in {wins} of {n} comparisons, "
                     f"{clear} of them beyond the 2σ bar{sign}.")
        vamp_units = [total_units(p["new"]["active_units"]) for p in pairs]
        std_units = [total_units(p["base"]["active_units"]) for p in pairs]
        more = sum(v > s for v, s in zip(vamp_units, std_units))
        fewer = sum(v < s for v, s in zip(vamp_units, std_units))
        full = [p for p in pairs if total_units(p["base"]["active_units"]) == LATENT * len(p["base"]["active_units"])]
        pruned = [p for p in pairs if p not in full]
        text = f"- Claim (2): more active units with the VampPrior in {more} of {n} comparisons, fewer in {fewer}, ties otherwise."
        if more <= n / 2:
            text += " Not confirmed here."
            if full:
                text += (f" In {len(full)} of {n} cases the standard prior still uses every unit, so there is "
                         "nothing for the VampPrior to rescue: the paper's point is that the standard prior switches "
                         "units off as training goes on (its KL term pushes unused dimensions onto the prior).")
            if pruned:
                listing = "; ".join(
                    f"{_title(p['dataset'])} {model_title(p['model'])}: {total_units(p['base']['active_units'])} "
                    f"with the standard prior, {total_units(p['new']['active_units'])} with the VampPrior"
                    for p in pruned)
                kept = sum(total_units(p["new"]["active_units"]) > total_units(p["base"]["active_units"])
                           for p in pruned)
                text += (f" Where it has switched units off ({listing}), the VampPrior kept more of them in {kept} "
                         f"of {len(pruned)} at this budget.")
        else:
            text += " The direction agrees with the paper."
        lines.append(text)
    for prior, what in (("vampprior-data", "VampPrior initialised from training images"), ("mog", "MoG prior")):
        others = [p for p in compare(records, prior) if not p["skip"]]
        if others:
            wins = sum(p["gain"] > 0 for p in others)
            lines.append(f"- The {what} ({prior}) beats the standard prior in {wins} of {len(others)} comparisons.")
    return "\n".join(lines)


def paper_sources(records: list[dict]) -> dict[str, str]:
    """Footnote letter per source of the paper figures that appear in `records`."""
    letters: dict[str, str] = {}
    for r in records:
        paper = PAPER_TABLE2.get((r["dataset"], r["model"], r["prior"]))
        if paper and paper[1] not in letters:
            letters[paper[1]] = "abcdefgh"[len(letters)]
    return letters


def why_budget(records: list[dict], others: list[dict] = ()) -> str:
    """The budget bullet of "why we differ", with the numbers of this run (and of the runs under
    another budget, `others`, where some cells were also run that way)."""
    gaps = []
    for r in [*records, *others]:
        paper = PAPER_TABLE2.get((r["dataset"], r["model"], r["prior"]))
        if paper:
            ours = ours_in_paper_unit(r["dataset"], r)
            gaps.append(f"{_title(r['dataset'])} {model_title(r['model'])} + {r['prior']} after {r['epochs']} epochs is "
                        f"{fmt(abs(ours - paper[0]), r['unit'])} {r['unit']} {'below' if ours < paper[0] else 'above'} "
                        "the paper's")
    caltech = [r for r in records if r["dataset"] == "caltech101"]
    if caltech:
        best = max(caltech, key=lambda r: r["log_likelihood"])
        gap = best["log_likelihood"] - CALTECH_VAMPPRIOR_NOTE
        gaps.append(f"our best Caltech101 model ({model_title(best['model'])} + {best['prior']}, "
                    f"{best['log_likelihood']:.2f}) is {abs(gap):.2f} nats {'below' if gap < 0 else 'above'} the "
                    f"{CALTECH_VAMPPRIOR_NOTE} quoted for the paper's Caltech101 VampPrior")
    lines = []
    for dataset in DATASETS:
        runs = [r for r in records if r["dataset"] == dataset]
        if not runs:
            continue
        budget = max(r["epoch_budget"] for r in runs)
        stopped = [r for r in runs if r["epochs"] < r["epoch_budget"]]
        if stopped:
            warmup = max(r["warmup"] for r in runs)
            lines.append(fill(
                TEMPLATE, "stopped_early", title=_title(dataset), stopped=len(stopped), runs=len(runs),
                patience=runs[0]["patience"], span=f"{min(r['epochs'] for r in stopped)}-{max(r['epochs'] for r in stopped)}",
                budget=budget, best=f"{min(r['best_epoch'] for r in stopped)}-{max(r['best_epoch'] for r in stopped)}",
                warmup=f"{warmup} epoch{'s' if warmup != 1 else ''}", paper_warmup=PAPER_WARMUP,
                warmup_check=warmup_check(dataset, runs, others)))
        if len(stopped) < len(runs):
            late = sum(r["best_epoch"] >= 0.9 * r["epochs"] for r in runs)
            lines.append(fill(TEMPLATE, "not_converged", title=_title(dataset), budget=budget, late=late, runs=len(runs)))
    return fill(TEMPLATE, "budget_bullet", paper_epochs=PAPER_EPOCHS, paper_warmup=PAPER_WARMUP,
                lines="\n".join(lines), gaps="; ".join(gaps) or "our LLs are far below the paper")


def warmup_check(dataset: str, runs: list[dict], others: list[dict]) -> str:
    """What the same cells did under the paper's warm-up, where `others` holds such runs."""
    by_key = {(r["model"], r["prior"]): r for r in runs}
    pairs = [(by_key[(o["model"], o["prior"])], o) for o in others
             if o["dataset"] == dataset and o["warmup"] == PAPER_WARMUP and (o["model"], o["prior"]) in by_key]
    if not pairs:
        return ""
    unit = DATASETS[dataset]["unit"]
    sign = -1 if unit == "bits/dim" else 1
    changes = [sign * (ours_in_paper_unit(dataset, o) - ours_in_paper_unit(dataset, r)) for r, o in pairs]
    verdict = (": those runs had overfit by the end of the warm-up, so the warm-up does not explain our gap "
               "to the paper on this dataset; we do not know what does." if all(c < 0 for c in changes) else ".")
    return fill(TEMPLATE, "warmup_check", paper_warmup=PAPER_WARMUP, unit=unit, verdict=verdict,
                cells=", ".join(f"{model_title(r['model'])} + {r['prior']}" for r, _ in pairs),
                changes=", ".join(signed(c, unit) for c in changes))


def budget_check(records: list[dict], others: list[dict], others_dir: Path | None) -> str:
    """The cells that were also run under another budget (`--compare-runs-dir`), side by side."""
    by_key = {(r["dataset"], r["model"], r["prior"]): r for r in records}
    rows = []
    for other in others:
        key = (other["dataset"], other["model"], other["prior"])
        main = by_key.get(key)
        if not main:
            continue
        unit, dataset = main["unit"], main["dataset"]
        a, b = ours_in_paper_unit(dataset, other), ours_in_paper_unit(dataset, main)
        change = b - a if unit == "bits/dim" else a - b
        noise = ""
        if (main["n_test"], main["test_selection"]) == (other["n_test"], other["test_selection"]):
            noise = f" (2σ ≈ {fmt(2 * gain_stderr(other, main), unit)})"
        rows.append(
            f"| {_title(dataset)} | {model_title(main['model'])} | {main['prior']} "
            f"| {main['warmup']}, {main['epochs']}/{main['epoch_budget']}, best {main['best_epoch']} "
            f"| {fmt(b, unit)} | {units(main['active_units'])} "
            f"| {other['warmup']}, {other['epochs']}/{other['epoch_budget']}, best {other['best_epoch']} "
            f"| {fmt(a, unit)} | {units(other['active_units'])} | {signed(change, unit)} {unit}{noise} "
            f"| {fmt(PAPER_TABLE2[key][0], unit) if key in PAPER_TABLE2 else ''} |")
    if not rows:
        return ""
    return fill(TEMPLATE, "budgets", others_dir=others_dir, commands=commands(others, others_dir, "--no-report"),
                rows="\n".join(rows))


def commands(records: list[dict], runs_dir: Path, ending: str, samples: bool = False) -> str:
    """The reproduce.py commands that ran `records` into `runs_dir`, one per dataset with exactly its
    cells (models x priors) and budget flags (`--samples` too if `samples`), each ending in `ending`."""
    lines = []
    for dataset in DATASETS:
        cells = [r for r in records if r["dataset"] == dataset]
        if not cells:
            continue
        flags = [f"--datasets {dataset}"]
        for flag, key in (("models", "model"), ("priors", "prior")):
            flags.append(f"--{flag} {' '.join(sorted({r[key] for r in cells}))}")
        for flag, key in (("epochs", "epoch_budget"), ("warmup", "warmup"), ("test-limit", "n_test")):
            flags += sorted({f"--{flag} {dataset}={r[key]}" for r in cells})
        if samples:
            flags += sorted({f"--samples {r['samples']}" for r in cells})
        lines.append(f"`python benchmarks/reproduce.py --data-dir /path/to/data --runs-dir {runs_dir} "
                     f"{' '.join(flags)} {ending}`")
    return " and ".join(lines)


def table_row(record: dict, sources: dict[str, str]) -> str:
    r, unit = record, record["unit"]
    ours = ours_in_paper_unit(r["dataset"], r)
    paper = PAPER_TABLE2.get((r["dataset"], r["model"], r["prior"]))
    paper_cell = diff = ""
    if paper:
        paper_cell = f"{fmt(paper[0], unit)} ({sources[paper[1]]})"
        diff = signed(ours - paper[0], unit)
    return (f"| {_title(r['dataset'])} | {model_title(r['model'])} | {r['prior']} "
            f"| {fmt(ours, unit)} ± {fmt(stderr_in_unit(r), unit)} | {paper_cell} | {diff} | {unit} "
            f"| {r['elbo']:.2f} | {units(r['active_units'])} | {r['epochs']}/{r['epoch_budget']}, best {r['best_epoch']} "
            f"| {r['warmup']} | {r['n_test']} {r['test_selection']} | {r['seconds_per_epoch']:.1f} "
            f"| {r['train_seconds'] / 60:.1f} | {r['eval_seconds'] / 60:.1f} |")


def render_section(records: list[dict], others: list[dict] = (), others_dir: Path | None = None) -> str:
    if not records:
        return f"{SECTION_START}\n{fill(TEMPLATE, 'empty')}\n{SECTION_END}"
    sources = paper_sources(records)
    missing = [run_name(*cell) for cell in GRID if cell not in recorded_cells(records)]
    total_minutes = _minutes(records)
    body = fill(
        TEMPLATE, "section",
        paper_epochs=PAPER_EPOCHS,
        devices="; ".join(sorted({r["device"] for r in records})),
        date=_dates(records),
        total_minutes=f"{total_minutes:.0f}",
        total_hours=f"{total_minutes / 60:.1f}",
        runs=len(records),
        rows="\n".join(table_row(r, sources) for r in records),
        footnotes=_footnotes(sources),
        caltech_note=CALTECH_VAMPPRIOR_NOTE,
        budget_lines=_budget_lines(records),
        finished=f"- Not finished in this run: {', '.join(missing)}." if missing else "- Every cell of the grid finished.",
        claims=_claims_table(records),
        summary=claim_summary(records),
        budget_check=_padded(budget_check(records, others, others_dir)),
        budget_bullet=why_budget(records, others),
        cpu_budget_command=CPU_BUDGET_COMMAND,
        gpu_command=GPU_COMMAND,
    )
    return f"{SECTION_START}\n{body}\n{SECTION_END}"


def _dates(records: list[dict]) -> str:
    dates = sorted({r["date"] for r in records})
    return dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"


def _minutes(records: list[dict]) -> float:
    """Training and evaluation time of `records`, in minutes."""
    return sum(r["train_seconds"] + r["eval_seconds"] for r in records) / 60


def _footnotes(sources: dict[str, str]) -> str:
    return "\n".join(f"- ({letter}) {source}." for source, letter in sources.items())


def _claims_table(records: list[dict]) -> str:
    return "\n".join(f"| {a} | {b} | {c} |" for a, b, c in claim_rows(records)) or "| (no pair finished yet) | | |"


def _budget_lines(records: list[dict]) -> str:
    budget: dict[str, set[str]] = {}
    for r in records:
        budget.setdefault(r["dataset"], set()).add(
            f"{r['epoch_budget']} epochs (paper: up to {PAPER_EPOCHS}), KL warm-up {r['warmup']} epochs "
            f"(paper: {PAPER_WARMUP}), patience {r['patience']}, K = {r['components']}, S = {r['samples']}, "
            f"{r['n_test']} test points ({r['test_selection']})")
    return "\n".join(f"- {_title(d)}: {'; '.join(sorted(v))}." for d, v in budget.items())


def render_merged_section(records: list[dict], runs_dir: Path) -> str:
    """The section of the cells run on their own with --merge-report (their table, budget and claims)."""
    if not records:
        return f"{MERGED_START}\n{fill(TEMPLATE, 'merged_empty')}\n{MERGED_END}"
    sources = paper_sources(records)
    body = fill(
        TEMPLATE, "merged", runs_dir=runs_dir, devices="; ".join(sorted({r["device"] for r in records})),
        date=_dates(records), total_minutes=f"{_minutes(records):.0f}", runs=len(records),
        commands=commands(records, runs_dir, "--merge-report", samples=True),
        rows="\n".join(table_row(r, sources) for r in records), footnotes=_footnotes(sources),
        budget_lines=_budget_lines(records), claims=_claims_table(records),
    )
    return f"{MERGED_START}\n{body}\n{MERGED_END}"


def _padded(block: str) -> str:
    """An optional block between two paragraphs: a blank line either side, or nothing."""
    return f"\n{block}\n" if block else ""


def write_results_md(records: list[dict], others: list[dict] = (), others_dir: Path | None = None,
                     path: Path = RESULTS_MD) -> None:
    """Replace only the text between the reproduction markers (re-read right before writing)."""
    replace_section(path, SECTION_START, SECTION_END, render_section(records, others, others_dir))


def publish(runs_dir: Path, compare_runs_dir: Path | None = None, replace_report: bool = False,
            merge_report: bool = False) -> tuple[bool, str]:
    """Rewrite the reproduction records and section from the finished runs in `runs_dir`; whether it
    did, and a line saying what happened.

    Leaves both files alone when that would drop cells they report and the runs folder lacks,
    unless `replace_report`: the committed table outlives the runs folders it was made from,
    which a fresh clone does not have. With `merge_report` those cells keep their committed records.
    """
    records = collect_records(runs_dir)
    if merge_report:
        return merge(records, runs_dir)
    dropped = recorded(RESULTS_JSON, KIND, CELL) - recorded_cells(records)
    if dropped and not replace_report:
        return False, (f"left {RESULTS_MD.name} and {RESULTS_JSON.name} alone: they report {len(dropped)} cell(s) "
                       f"that {runs_dir} has no finished run of (e.g. {run_name(*min(dropped))}); each run's "
                       "figures are in its folder's metrics.json; --replace-report overwrites the report with "
                       "these runs only")
    others = collect_records(compare_runs_dir) if compare_runs_dir else []
    write_results_json(records, RESULTS_JSON)
    write_results_md(records, others, compare_runs_dir, RESULTS_MD)
    return True, f"wrote {len(records)} reproduction records to {RESULTS_JSON.name} and {RESULTS_MD.name}"


def merge(records: list[dict], runs_dir: Path) -> tuple[bool, str]:
    """--merge-report: the cells in `records` replace their own records in results.json (the others
    are kept as committed) and get a section of their own in RESULTS.md; the main section, whose
    claims rest on paired per-point values that results.json does not keep, is left as it is."""
    if not records:
        return False, f"left {RESULTS_MD.name} and {RESULTS_JSON.name} alone: {runs_dir} has no finished run"
    fresh = recorded_cells(records)
    kept = [r for r in read_records(RESULTS_JSON, KIND, CELL) if tuple(r[f] for f in CELL) not in fresh]
    in_grid_order = sorted(kept + records, key=lambda r: GRID.index(tuple(r[f] for f in CELL))
                           if tuple(r[f] for f in CELL) in GRID else len(GRID))
    write_results_json(in_grid_order, RESULTS_JSON)
    replace_section(RESULTS_MD, MERGED_START, MERGED_END, render_merged_section(records, runs_dir))
    return True, (f"merged {len(records)} reproduction records into {RESULTS_JSON.name} ({len(kept)} kept) and "
                  f"wrote their own section of {RESULTS_MD.name}")
