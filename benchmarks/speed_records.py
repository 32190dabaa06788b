"""From the children's raw timings to the figures the Speed report states and the records of
results.json ("kind": "speed"): FLOP bounds, fractions of them, and ratios of one run."""

from __future__ import annotations

from benchmarks.speed_runner import SAMPLES

KIND = "speed"  # results.json holds other benchmarks' records too, told apart by "kind"
STATIC_MNIST_TEST = 10_000  # test points of the paper's largest evaluation
# The project's targets: training at 85% of the FLOP bound; the S = 5000 evaluator within 1.6x its
# bound and 20x faster than the authors' per-point evaluation.
TARGET_FRACTION_OF_BOUND = 0.85
TARGET_EVAL_WITHIN_BOUND = 1.6
TARGET_EVAL_SPEEDUP = 20.0
REFERENCE_SHAPE = (600, 784, 300)  # the batch and the K pseudo-inputs through the first encoder layer


def peak_gflops(rows: list[dict]) -> float:
    return max(row["gflops"] for row in rows)


def derive(info: dict, train: dict, compiled: dict | None, evaluation: dict, memory: dict, mode: str) -> dict:
    """{"records": [...], "train": ..., "eval": ..., "memory": ...}: each part None or {"error": ...}
    where its child failed."""
    records: list[dict] = []

    def record(benchmark, metric, value, unit, **extra):
        records.append({"kind": KIND, "mode": mode, "benchmark": benchmark, "metric": metric, "value": value,
                        "unit": unit, **extra, "machine": info})

    figures = {"records": records, "train": None, "eval": None, "memory": memory}
    if "error" in train:
        figures["train"] = figures["eval"] = {"error": train["error"]}  # the bound needs the matmul peak
        return figures
    peak = peak_gflops(train["matmul"])
    for row in train["matmul"]:
        record("matmul", "gflops", row["gflops"], "GFLOP/s", shape=row["shape"], label=row["label"])
    peak1 = peak_gflops(train["matmul_one_thread"]) if train.get("matmul_one_thread") else None
    figures["train"] = _training(train, compiled, peak, peak1, record)
    figures["eval"] = {"error": evaluation["error"]} if "error" in evaluation else _evaluation(evaluation, peak, peak1, record)
    for what, result in memory.items():
        if "error" not in result:
            record("memory", "peak_rss_mb", result["peak_rss_mb"], "MB", workload=what,
                   rss_before_mb=result["rss_before_mb"], cuda_max_allocated_mb=result.get("cuda_max_allocated_mb"))
    return figures


def _training(train: dict, compiled: dict | None, peak: float, peak1: float | None, record) -> dict:
    variants = {v["key"]: v for v in train["variants"]}
    base, theirs = variants["baseline"], variants["authors"]
    bound = base["flops_per_epoch"] / (peak * 1e9)
    reference = next(row for row in train["matmul"] if row["shape"] == list(REFERENCE_SHAPE))
    t = {
        "matmul": train["matmul"], "peak": peak, "base": base, "authors": theirs, "bound": bound,
        "fraction": bound / base["seconds_per_epoch"],
        "authors_ratio": theirs["seconds_per_epoch"] / base["seconds_per_epoch"],
        "reference": reference, "reference_bound": base["flops_per_epoch"] / (reference["gflops"] * 1e9),
        "variants": [], "compiled": compiled, "one_core": None, "profile": None,
    }
    record("train", "seconds_per_epoch", base["seconds_per_epoch"], "s", variant="baseline",
           samples=base["samples"], cpu_seconds_per_epoch=base["cpu_seconds_per_epoch"])
    record("train", "flop_bound_seconds_per_epoch", bound, "s", flops_per_epoch=base["flops_per_epoch"], peak_gflops=peak)
    record("train", "fraction_of_flop_bound", t["fraction"], "ratio",
           reference_shape_bound_seconds=t["reference_bound"], reference_shape_gflops=reference["gflops"])
    record("train", "speedup_vs_authors", t["authors_ratio"], "ratio", seconds_per_epoch=base["seconds_per_epoch"],
           authors_seconds_per_epoch=theirs["seconds_per_epoch"], authors_samples=theirs["samples"],
           authors_flops_per_epoch=theirs["flops_per_epoch"])
    for v in train["variants"]:
        row = v | {"speedup": base["seconds_per_epoch"] / v["seconds_per_epoch"],
                   "own_fraction": v["flops_per_epoch"] / (peak * 1e9) / v["seconds_per_epoch"]}
        t["variants"].append(row)
        record("train", "speedup_vs_baseline", row["speedup"], "ratio", variant=v["key"], name=v["name"],
               seconds_per_epoch=v["seconds_per_epoch"], samples=v["samples"], batch_size=v["batch_size"],
               threads=v["threads"], flops_per_epoch=v["flops_per_epoch"])
    if compiled is not None:
        if "error" in compiled:
            record("train", "speedup_vs_baseline", None, "ratio", variant="compile", error=compiled["error"])
        else:
            compiled = compiled | {"speedup": compiled["eager"] / compiled["compiled"]}
            t["compiled"] = compiled
            record("train", "speedup_vs_baseline", compiled["speedup"], "ratio", variant="compile",
                   seconds_per_epoch=compiled["compiled"], eager_seconds_per_epoch=compiled["eager"],
                   compile_seconds=compiled["compile_seconds"])
    one_thread = base["threads"] == 1  # then ours and the authors' rows are one thread's already
    ours1 = variants.get("threads1") or (base if one_thread else None)
    theirs1 = variants.get("authors_threads1") or (theirs if one_thread else None)
    if peak1 and ours1:
        bound1 = base["flops_per_epoch"] / (peak1 * 1e9)
        t["one_core"] = {"peak": peak1, "bound": bound1, "cpu_seconds": ours1["cpu_seconds_per_epoch"],
                         "seconds": ours1["seconds_per_epoch"], "fraction": bound1 / ours1["cpu_seconds_per_epoch"],
                         "authors_cpu_seconds": theirs1["cpu_seconds_per_epoch"] if theirs1 else None}
        record("train", "one_thread_fraction_of_flop_bound", t["one_core"]["fraction"], "ratio",
               cpu_seconds_per_epoch=ours1["cpu_seconds_per_epoch"], one_core_peak_gflops=peak1,
               one_core_bound_seconds=bound1)
        if theirs1:
            ratio = theirs1["cpu_seconds_per_epoch"] / ours1["cpu_seconds_per_epoch"]
            t["one_core"]["authors_ratio"] = ratio
            record("train", "one_thread_speedup_vs_authors", ratio, "ratio",
                   cpu_seconds_per_epoch=ours1["cpu_seconds_per_epoch"],
                   authors_cpu_seconds_per_epoch=theirs1["cpu_seconds_per_epoch"])
    profiled = train.get("step_profile")
    if profiled:
        share = profiled["matmul_ms_per_step"] / (profiled["matmul_ms_per_step"] + profiled["other_ms_per_step"])
        t["profile"] = profiled | {"share": share}
        record("train", "matmul_share_of_step", share, "ratio", **profiled)
    return t


def _evaluation(evaluation: dict, peak: float, peak1: float | None, record) -> dict:
    ours, theirs = evaluation["evaluator_seconds_per_point"], evaluation["authors_seconds_per_point"]
    bound = evaluation["evaluator_flops_per_point"] / (peak * 1e9)
    e = evaluation | {"ours": ours, "theirs": theirs, "bound": bound, "speedup": theirs / ours,
                      "over_bound": ours / bound, "bound_speedup": theirs / bound,
                      "flop_ratio": evaluation["authors_flops_per_point"] / evaluation["evaluator_flops_per_point"],
                      "one_core": None}
    record("log_likelihood", "evaluator_points_per_second", 1 / ours, "points/s", samples=SAMPLES,
           points=evaluation["points"], seconds_per_1000=1000 * ours, seconds_for_10000=STATIC_MNIST_TEST * ours,
           flops_per_point=evaluation["evaluator_flops_per_point"],
           levers_seconds_per_point=evaluation["levers_seconds_per_point"])
    record("log_likelihood", "authors_points_per_second", 1 / theirs, "points/s", samples=SAMPLES,
           points=evaluation["authors_points"], seconds_per_1000=1000 * theirs,
           flops_per_point=evaluation["authors_flops_per_point"])
    record("log_likelihood", "speedup_vs_authors", e["speedup"], "ratio")
    record("log_likelihood", "flop_bound_seconds_per_1000", 1000 * bound, "s", peak_gflops=peak)
    record("log_likelihood", "time_over_flop_bound", e["over_bound"], "ratio")
    if peak1 and "one_thread_evaluator_cpu_seconds_per_point" in evaluation:
        bound1 = evaluation["evaluator_flops_per_point"] / (peak1 * 1e9)
        ours1 = evaluation["one_thread_evaluator_cpu_seconds_per_point"]
        theirs1 = evaluation["one_thread_authors_cpu_seconds_per_point"]
        e["one_core"] = {"peak": peak1, "bound": bound1, "ours": ours1, "theirs": theirs1,
                         "over_bound": ours1 / bound1, "speedup": theirs1 / ours1}
        record("log_likelihood", "one_thread_time_over_flop_bound", ours1 / bound1, "ratio",
               cpu_seconds_per_point=ours1, authors_cpu_seconds_per_point=theirs1,
               speedup_vs_authors=theirs1 / ours1, one_core_peak_gflops=peak1)
    return e
