"""Damaged checkpoint folders against every reading command of the CLI.

One tiny digits checkpoint is built here and damaged in a few dozen ways (truncations, bit flips,
JSON of the wrong types, huge sizes, deep nesting, a pickle posing as safetensors, headers claiming
huge tensors). `info`, `evaluate --limit 2 --samples 2` and `sample` each run on every folder in a
process of their own, forked from one driver that has imported torch once (so the corpus runs in
seconds), and must end with exit code 0 or 2, never a traceback; 2 with exactly one line on stderr;
2 whenever the command reads the damaged file and the damage is detectable; and a peak resident
size no more than MAX_GROWTH_MB above the one it started with (torch already imported).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_model, tiny_config

from vae_core import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
MAX_GROWTH_MB = 300
COMMANDS = {
    "info": ["info", "{ckpt}"],
    "evaluate": ["evaluate", "{ckpt}", "--limit", "2", "--samples", "2", "--device", "cpu"],
    "sample": ["sample", "{ckpt}", "--n", "4", "--out", "{scratch}/grid.png"],
}
ALL = set(COMMANDS)
LOADERS = {"evaluate", "sample"}  # the commands that read the weights against the config

# Forks one child per (folder, command) and reports exit code, stderr and peak-memory growth. The
# child runs under an address-space limit, so a loader that does try to allocate gigabytes fails
# there instead of exhausting the machine.
DRIVER = r"""
import json, os, resource, sys, traceback
import torch
torch.set_num_threads(1)
from vae_core import checkpoint as ckpt, cli, data
jobs = json.loads(sys.stdin.read())
data.load_dataset("digits")                          # imports what evaluate needs, once
ckpt.load(jobs["warm"])                              # and the meta-device build's first-use imports
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])              # kB
results = []
for job in jobs["runs"]:
    err, start = job["scratch"] + "/stderr", job["scratch"] + "/rss"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with open(start, "w") as f:                  # the child's own resident size before it runs
                f.write(str(status("VmRSS:")))
            limit = (status("VmSize:") + 2 * 2**20) * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            try:
                code = cli.main(job["argv"])
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, wait_status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    results.append({"code": code, "stderr": open(err, errors="replace").read(),
                    "growth_mb": (usage.ru_maxrss - int(open(start).read())) / 1024})
print(json.dumps(results))
"""


def header_of(data: bytes) -> tuple[dict, int]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), length


def with_header(data: bytes, edit) -> bytes:
    header, length = header_of(data)
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + length :]


def first_tensor(header: dict) -> str:
    return next(k for k in header if k != "__metadata__")


def flip(data: bytes, position: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[position] ^= 1 << bit
    return bytes(out)


def config_with(payload: dict, **model) -> bytes:
    return json.dumps(payload | {"model": payload["model"] | model}).encode()


def corpus(folder: Path) -> list[tuple[str, str, bytes, set[str]]]:
    """(case name, file, its damaged bytes, the commands that must exit 2)."""
    config = (folder / ckpt.CONFIG_FILE).read_bytes()
    weights = (folder / ckpt.WEIGHTS_FILE).read_bytes()
    history = (folder / ckpt.HISTORY_FILE).read_bytes()
    metrics = (folder / ckpt.METRICS_FILE).read_bytes()
    payload = json.loads(config)
    _, header_length = header_of(weights)
    deep = b"[" * 200_000 + b"]" * 200_000
    cases = []
    for keep in (0, 1, len(config) // 2, len(config) - 2):
        cases.append((f"config cut at {keep}", ckpt.CONFIG_FILE, config[:keep], ALL))
    for keep in (0, 7, 8 + header_length // 2, 8 + header_length, len(weights) // 2, len(weights) - 1):
        cases.append((f"weights cut at {keep}", ckpt.WEIGHTS_FILE, weights[:keep], ALL))
    for keep in (1, len(history) // 2):
        cases.append((f"history cut at {keep}", ckpt.HISTORY_FILE, history[:keep], {"info"}))
    cases.append(("metrics cut", ckpt.METRICS_FILE, metrics[: len(metrics) // 2], {"info"}))
    cases += [
        ("weights length prefix flipped", ckpt.WEIGHTS_FILE, flip(weights, 4, 3), ALL),
        ("weights header byte flipped", ckpt.WEIGHTS_FILE, flip(weights, 8 + header_length // 3, 1), set()),
        ("weights data bit flipped", ckpt.WEIGHTS_FILE, flip(weights, len(weights) - 3, 6), set()),
        ("config byte flipped", ckpt.CONFIG_FILE, flip(config, len(config) // 3, 2), set()),
        ("config is a list", ckpt.CONFIG_FILE, b"[1, 2, 3]", ALL),
        ("model config is a string", ckpt.CONFIG_FILE, json.dumps(payload | {"model": "vae"}).encode(), ALL),
        ("train settings are a list", ckpt.CONFIG_FILE, json.dumps(payload | {"train": [1]}).encode(), ALL),
        ("hidden is a string", ckpt.CONFIG_FILE, config_with(payload, hidden="16"), ALL),
        ("huge sizes within bounds", ckpt.CONFIG_FILE, config_with(payload, hidden=8192, components=65536), LOADERS),
        ("huge images within bounds", ckpt.CONFIG_FILE,
         config_with(payload, input_shape=[4, 1024, 1024], hidden=8192, latent_dim=4096), LOADERS),
        ("components beyond bounds", ckpt.CONFIG_FILE, config_with(payload, components=5_000_000), ALL),
        ("an integer of 5000 digits", ckpt.CONFIG_FILE,
         config.replace(b'"hidden": 16', b'"hidden": ' + b"9" * 5000), ALL),
        ("config nested deeply", ckpt.CONFIG_FILE, deep, ALL),
        ("history nested deeply", ckpt.HISTORY_FILE, deep, {"info"}),
        ("metrics nested deeply", ckpt.METRICS_FILE, b'{"a": ' + deep + b"}", {"info"}),
        ("history is a dict", ckpt.HISTORY_FILE, b'{"epoch": 1}', {"info"}),
        ("history holds strings", ckpt.HISTORY_FILE, b'["epoch 1", "epoch 2"]', {"info"}),
        ("history holds text values", ckpt.HISTORY_FILE, b'[{"epoch": 1, "val_loss": "low"}]', {"info"}),
        ("metrics is a list", ckpt.METRICS_FILE, b"[1, 2]", {"info"}),
        ("metrics active units a list", ckpt.METRICS_FILE, b'{"active_units": [1]}', {"info"}),
        ("history of 9 MB", ckpt.HISTORY_FILE, b"[" + b"0," * (9 * 2**19) + b"0]", {"info"}),
        ("a pickle as safetensors", ckpt.WEIGHTS_FILE, pickle.dumps({"weight": [0.0] * 100}), ALL),
        ("a header claiming a huge tensor", ckpt.WEIGHTS_FILE, with_header(weights, lambda h: h[first_tensor(h)].update(
            shape=[100_000, 100_000], data_offsets=[0, 4 * 10**10])), ALL),
        ("a header claiming 1 TB", ckpt.WEIGHTS_FILE, struct.pack("<Q", 2**40) + weights[8:], ALL),
        ("an unknown dtype", ckpt.WEIGHTS_FILE, with_header(weights, lambda h: h[first_tensor(h)].update(dtype="F4")),
         ALL),
        ("float64 weights", ckpt.WEIGHTS_FILE, with_header(weights, lambda h: h[first_tensor(h)].update(dtype="F64")),
         ALL),  # the byte range no longer fits the shape
        ("a header that is a list", ckpt.WEIGHTS_FILE,
         weights[:8] + b"[" + b" " * (header_length - 2) + b"]" + weights[8 + header_length :], ALL),
    ]
    return cases


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A tiny VampPrior VAE for the embedded digits, saved with a history and metrics."""
    config = tiny_config(prior="vampprior")
    history = [{"epoch": e, "val_loss": 40.0 - e, "active_units": {"z": 2}} for e in (1, 2)]
    return ckpt.save(tmp_path_factory.mktemp("fuzz") / "base", make_model(config), config, history=history,
                     metrics={"log_likelihood": -40.0, "samples": 5000, "n_test": 360})


def test_every_damaged_folder_fails_cleanly_and_cheaply(base, tmp_path):
    runs, expected = [], []
    cases = [("intact (the control)", None, b"", set())] + corpus(base)
    for index, (name, file, damaged, must_fail) in enumerate(cases):
        folder = tmp_path / f"case{index}"
        shutil.copytree(base, folder)
        if file is not None:
            (folder / file).write_bytes(damaged)
        for command, argv in COMMANDS.items():
            scratch = tmp_path / f"scratch{index}-{command}"
            scratch.mkdir()
            runs.append({"argv": [a.format(ckpt=folder, scratch=scratch) for a in argv], "scratch": str(scratch)})
            expected.append((name, command, command in must_fail, file is None))
    assert len(cases) >= 30
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps({"warm": str(base), "runs": runs}),
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])

    problems = []
    for (name, command, must_fail, intact), result in zip(expected, results, strict=True):
        code, err, growth = result["code"], result["stderr"], result["growth_mb"]
        where = f"{name} / {command}"
        if "Traceback" in err or code not in (0, 2):
            problems.append(f"{where}: exit {code}: {err.strip().splitlines()[-1:]}")
        elif code == 2 and (err.count("\n") != 1 or not err.startswith("error: ")):
            problems.append(f"{where}: not one error line: {err!r}")
        elif must_fail and code != 2:
            problems.append(f"{where}: accepted")
        elif intact and code != 0:
            problems.append(f"{where}: refused: {err.strip()}")
        if growth > MAX_GROWTH_MB:
            problems.append(f"{where}: peak memory {growth:.0f} MB above its start")
    assert not problems, "\n".join(problems)
