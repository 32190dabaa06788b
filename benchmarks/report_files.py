"""What the benchmark scripts share: the machine's description, their two result files (one marked
section of RESULTS.md each, and the records of one "kind" each in results.json), replaced
atomically so that the other scripts' parts are kept, and the Markdown templates of their reports.

A template file, benchmarks/templates/<name>.md, holds named blocks, each opened by a line
`<!-- block: NAME -->`; a block is a `string.Template` whose `$placeholders` are filled by `fill`,
which refuses a missing value and a value no placeholder asks for.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
from pathlib import Path
from string import Template

BENCHMARKS = Path(__file__).resolve().parent
RESULTS_JSON = BENCHMARKS / "results.json"
RESULTS_MD = BENCHMARKS / "RESULTS.md"
TEMPLATES = BENCHMARKS / "templates"
BLOCK = re.compile(r"^<!-- block: (\w+) -->\n", re.MULTILINE)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or what `platform` knows where that is missing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device) -> str:
    """A torch device in words: the GPU's name, or the CPU's cores, torch threads and model."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {cpu_name()})"


@functools.cache
def template_blocks(name: str) -> dict[str, Template]:
    """The named blocks of benchmarks/templates/<name>.md (trailing blank lines dropped)."""
    parts = BLOCK.split((TEMPLATES / f"{name}.md").read_text())
    assert not parts[0].strip(), f"{name}.md: text before its first block marker"
    return {key: Template(text.rstrip("\n")) for key, text in zip(parts[1::2], parts[2::2])}


def fill(name: str, block: str, /, **values) -> str:
    """Block `block` of template `name` with its placeholders filled from `values` (str() of each)."""
    template = template_blocks(name)[block]
    assert template.is_valid(), f"template {name}.md, block {block}: a '$' that names no placeholder (write $$)"
    wanted = set(template.get_identifiers())
    missing, unused = wanted - set(values), set(values) - wanted
    if missing or unused:
        raise KeyError(f"template {name}.md, block {block}: missing {sorted(missing)}, unused {sorted(unused)}")
    return template.substitute({key: str(value) for key, value in values.items()})


def write_text(path: Path, text: str) -> None:
    from vae_core.files import atomic_write_bytes

    atomic_write_bytes(Path(path), text.encode())


def replace_section(path: Path, start: str, end: str, section: str) -> None:
    """Put `section` (which begins with `start` and ends with `end`) in place of the text between
    those markers in `path` (re-read right before writing), or append it where they are missing."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    first, last = text.find(start), text.find(end)
    if first != -1 and last > first:
        text = text[:first] + section + text[last + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    write_text(path, text)


def replace_records(path: Path, kind: str, records: list[dict]) -> None:
    """Replace the records of `kind` in the JSON list at `path`, keep every other record."""
    existing = []
    if path.is_file():
        text = path.read_text()
        existing = json.loads(text) if text.strip() else []
        if not isinstance(existing, list):
            raise SystemExit(f"error: {path} is not a JSON list; not overwriting it")
    kept = [r for r in existing if not (isinstance(r, dict) and r.get("kind") == kind)]
    write_text(path, json.dumps(kept + records, indent=2) + "\n")


def read_records(path: Path, kind: str, fields: tuple[str, ...] = ()) -> list[dict]:
    """The records of `kind` (holding every one of `fields`) in the JSON list at `path`; none if it
    is missing or does not parse (replace_records refuses such a file itself)."""
    try:
        existing = json.loads(Path(path).read_text() or "[]")
    except (OSError, json.JSONDecodeError):
        return []
    if not isinstance(existing, list):
        return []
    return [r for r in existing if isinstance(r, dict) and r.get("kind") == kind and set(fields) <= set(r)]


def recorded(path: Path, kind: str, fields: tuple[str, ...]) -> set[tuple]:
    """The `fields` of every record of `kind` in the JSON list at `path`."""
    return {tuple(r[f] for f in fields) for r in read_records(path, kind, fields)}
