"""The "Speed" section of benchmarks/RESULTS.md from speed_records.derive's figures; the prose
lives in benchmarks/templates/speed.md."""

from __future__ import annotations

from benchmarks.report_files import fill
from benchmarks.speed_records import (
    STATIC_MNIST_TEST,
    TARGET_EVAL_SPEEDUP,
    TARGET_EVAL_WITHIN_BOUND,
    TARGET_FRACTION_OF_BOUND,
)
from benchmarks.speed_runner import SAMPLES

TEMPLATE = "speed"
MD_START, MD_END = "<!-- speed:start -->", "<!-- speed:end -->"
MEMORY_LABELS = {"train": "our training, batch 100", "authors_train": "the authors' training loop, batch 100",
                 "eval": f"our evaluator, 4 points, S = {SAMPLES}",
                 "authors_eval": f"the authors' evaluation, 1 point, S = {SAMPLES}"}


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def x(value: float) -> str:
    """A ratio as the report writes it: 1.23x."""
    return f"{value:.2f}x"


def render(figures: dict, info: dict) -> str:
    """The whole section, markers included."""
    targets, parts = [], []
    train, evaluation = figures["train"], figures["eval"]
    if "error" in train:
        parts.append(f"Training benchmark failed: {train['error']}")
    else:
        targets.append(_target_training(train))
        parts += [_matmul(train), _training(train)]
    if "error" in evaluation:
        parts.append(f"Log-likelihood benchmark failed: {evaluation['error']}")
    else:
        targets.append(_target_log_likelihood(evaluation))
        parts.append(_log_likelihood(evaluation, info))
    parts.append(_memory(figures["memory"], info))
    if targets:
        parts.insert(0, fill(TEMPLATE, "targets", lines="\n".join(targets)))
    return "\n\n".join([MD_START + "\n" + _header(info), *parts, MD_END])


def _header(info: dict) -> str:
    return fill(TEMPLATE, "header", flags=f" {info['flags']}" if info.get("flags") else "", cpu=info["cpu"],
                cores=info["cores"], threads=count(info["threads"], "torch thread"), torch=info["torch"],
                device=info["device"] + (f" ({info['gpu']})" if "gpu" in info else ""), date=info["date"],
                load_start=info.get("load_average_start"), load_end=info.get("load_average_end"),
                note=f" While it ran: {info['note'].rstrip('.')}." if info.get("note") else "")


def _target_training(t: dict) -> str:
    base, one_core = t["base"], t["one_core"]
    extra = ""
    if one_core:
        authors = f", **{x(one_core['authors_ratio'])}** faster than the authors' loop" if "authors_ratio" in one_core else ""
        extra = fill(TEMPLATE, "target_training_one_core", fraction=f"{one_core['fraction']:.0%}", authors=authors)
    return fill(TEMPLATE, "target_training", seconds=f"{base['seconds_per_epoch']:.2f}", fraction=f"{t['fraction']:.0%}",
                bound=f"{t['bound']:.2f}", target=f"{TARGET_FRACTION_OF_BOUND:.0%}",
                met=met(t["fraction"] >= TARGET_FRACTION_OF_BOUND), ratio=x(t["authors_ratio"]),
                authors=f"{t['authors']['seconds_per_epoch']:.2f}", one_core=extra)


def _target_log_likelihood(e: dict) -> str:
    extra = ""
    if e["one_core"]:
        one = e["one_core"]
        extra = fill(TEMPLATE, "target_ll_one_core", over_bound=x(one["over_bound"]),
                     met=met(one["over_bound"] <= TARGET_EVAL_WITHIN_BOUND), speedup=f"{one['speedup']:.1f}x")
    return fill(TEMPLATE, "target_ll", samples=SAMPLES, per_1000=f"{1000 * e['ours']:.0f}",
                for_10000=f"{STATIC_MNIST_TEST * e['ours'] / 60:.1f}", over_bound=x(e["over_bound"]),
                target=f"{TARGET_EVAL_WITHIN_BOUND}x", met=met(e["over_bound"] <= TARGET_EVAL_WITHIN_BOUND),
                speedup=f"{e['speedup']:.1f}x", target_speedup=f"{TARGET_EVAL_SPEEDUP:.0f}x",
                met_speedup=met(e["speedup"] >= TARGET_EVAL_SPEEDUP), flop_ratio=f"{e['flop_ratio']:.1f}x",
                bound_speedup=f"{e['bound_speedup']:.1f}x", one_core=extra)


def _matmul(t: dict) -> str:
    rows = [f"| {' x '.join(map(str, row['shape']))} | {row['label']} | {row['gflops']:.1f} | {row['gflops_median']:.1f} |"
            for row in t["matmul"]]
    return fill(TEMPLATE, "matmul", rows="\n".join(rows), peak=f"{t['peak']:.1f}")


def _training(t: dict) -> str:
    base, theirs = t["base"], t["authors"]
    rows = [f"| {v['name']} | {v['seconds_per_epoch']:.3f} | {x(v['speedup'])} | {v['flops_per_epoch'] / 1e9:.1f} "
            f"| {v['own_fraction']:.0%} |" for v in t["variants"]]
    compiled = t["compiled"]
    if compiled is not None:
        if "error" in compiled:
            rows.append(f"| (c) torch.compile(model) | skipped: {compiled['error']} | | | |")
        else:
            rows.append(f"| (c) torch.compile(model) (vs eager {compiled['eager']:.3f} s in its own process; compiling "
                        f"took {compiled['compile_seconds']:.0f} s) | {compiled['compiled']:.3f} | "
                        f"{x(compiled['speedup'])} | | |")
    paragraphs = [fill(
        TEMPLATE, "training", seconds=f"{base['seconds_per_epoch']:.3f}", threads=count(base["threads"], "thread"),
        cpu_seconds=f"{base['cpu_seconds_per_epoch']:.3f}", authors_seconds=f"{theirs['seconds_per_epoch']:.3f}",
        authors_cpu_seconds=f"{theirs['cpu_seconds_per_epoch']:.3f}", authors_ratio=x(t["authors_ratio"]),
        authors_gflop=f"{theirs['flops_per_epoch'] / 1e9:.1f}", gflop=f"{base['flops_per_epoch'] / 1e9:.1f}",
        gflop_step=f"{base['flops_per_epoch'] / base['steps_per_epoch'] / 1e9:.3f}", bound=f"{t['bound']:.3f}",
        fraction=f"{t['fraction']:.0%}", target=f"{TARGET_FRACTION_OF_BOUND:.0%}",
        reference_shape=" x ".join(map(str, t["reference"]["shape"])), reference_gflops=f"{t['reference']['gflops']:.0f}",
        reference_bound=f"{t['reference_bound']:.3f}",
        reference_fraction=f"{t['reference_bound'] / base['seconds_per_epoch']:.0%}", rows="\n".join(rows))]
    one_core = t["one_core"]
    if one_core:
        authors = ""
        if "authors_ratio" in one_core:
            authors = fill(TEMPLATE, "one_core_training_authors", cpu_seconds=f"{one_core['authors_cpu_seconds']:.3f}",
                           ratio=x(one_core["authors_ratio"]))
        paragraphs.append(fill(TEMPLATE, "one_core_training", cpu_seconds=f"{one_core['cpu_seconds']:.3f}",
                               seconds=f"{one_core['seconds']:.3f}", peak=f"{one_core['peak']:.1f}",
                               bound=f"{one_core['bound']:.3f}", fraction=f"{one_core['fraction']:.0%}",
                               authors=authors))
    if t["profile"]:
        p = t["profile"]
        paragraphs.append(fill(TEMPLATE, "profile", steps=p["steps"], matmul=f"{p['matmul_ms_per_step']:.1f}",
                               share=f"{p['share']:.0%}", other=f"{p['other_ms_per_step']:.1f}"))
    paragraphs.append(fill(TEMPLATE, "rotation", rounds=len(base["samples"]),
                           partial=" (quick mode: epochs extrapolated from 6 steps)" if base["partial_epochs"] else ""))
    return "\n\n".join(paragraphs)


def _log_likelihood(e: dict, info: dict) -> str:
    ours, theirs, bound = e["ours"], e["theirs"], e["bound"]
    text = fill(
        TEMPLATE, "log_likelihood", samples=SAMPLES, points=count(e["points"], "point"), authors_points=count(e["authors_points"], "point"),
        ours_rate=f"{1 / ours:.1f}", ours_1000=f"{1000 * ours:.1f}", ours_10000=f"{STATIC_MNIST_TEST * ours:.0f}",
        ours_gflop=f"{e['evaluator_flops_per_point'] / 1e9:.2f}",
        authors_rate=f"{1 / theirs:.2f}", authors_1000=f"{1000 * theirs:.0f}",
        authors_10000=f"{STATIC_MNIST_TEST * theirs:.0f}", authors_gflop=f"{e['authors_flops_per_point'] / 1e9:.2f}",
        bound_rate=f"{1 / bound:.1f}", bound_1000=f"{1000 * bound:.1f}", bound_10000=f"{STATIC_MNIST_TEST * bound:.0f}",
        speedup=f"{e['speedup']:.1f}x", target_speedup=f"{TARGET_EVAL_SPEEDUP:.0f}x", flop_ratio=f"{e['flop_ratio']:.1f}x",
        authors_throughput=f"{e['authors_flops_per_point'] / theirs / 1e9:.0f}",
        ours_throughput=f"{e['evaluator_flops_per_point'] / ours / 1e9:.0f}", bound_speedup=f"{e['bound_speedup']:.1f}x",
        bound_note=(", so the target needs fewer FLOPs per point, not faster ones"
                    if e["bound_speedup"] < TARGET_EVAL_SPEEDUP else ""),
        over_bound=x(e["over_bound"]), target=f"{TARGET_EVAL_WITHIN_BOUND}x",
        once=f"{e['evaluator_flops_once'] / 1e9:.2f}", ours_ll=f"{e['evaluator_mean_ll_same_points']:.2f}",
        authors_ll=f"{e['authors_mean_ll']:.2f}")
    bullets = [text]
    if e["one_core"]:
        one = e["one_core"]
        bullets.append(fill(TEMPLATE, "one_core_ll", ours=f"{1000 * one['ours']:.0f}", over_bound=x(one["over_bound"]),
                            bound=f"{1000 * one['bound']:.0f}", peak=f"{one['peak']:.0f}",
                            theirs=f"{1000 * one['theirs']:.0f}", speedup=f"{one['speedup']:.1f}x"))
    levers = dict(e["levers_seconds_per_point"])
    if levers:
        from vae_core.evaluate import ACCELERATOR_MAX_ROWS, CPU_MAX_ROWS

        float64 = levers.pop("float64")
        bullets.append(fill(TEMPLATE, "levers_ll", ours=f"{1000 * ours:.0f}", float64=f"{1000 * float64:.0f}",
                            default_rows=CPU_MAX_ROWS if info["device"] == "cpu" else ACCELERATOR_MAX_ROWS,
                            sweep=", ".join(f"{rows}: {1000 * s:.0f}" for rows, s in levers.items())))
    return "\n".join(bullets)


def _memory(memory: dict, info: dict) -> str:
    cuda = info["device"].startswith("cuda")
    rows = []
    for what, result in memory.items():
        if "error" in result:
            rows.append(f"| {MEMORY_LABELS[what]} | failed: {result['error']} | |" + (" |" if cuda else ""))
            continue
        allocated = f" {result['cuda_max_allocated_mb']:.0f} |" if "cuda_max_allocated_mb" in result else ""
        rows.append(f"| {MEMORY_LABELS[what]} | {result['peak_rss_mb']:.0f} | {result['rss_before_mb']:.0f} |{allocated}")
    return fill(TEMPLATE, "memory", cuda_header=" CUDA max allocated (MB) |" if cuda else "",
                cuda_rule="---:|" if cuda else "", rows="\n".join(rows))
