"""What the benchmark scripts share: the CPU's name, and their two result files (one marked section
of RESULTS.md each, and the records of one "kind" each in results.json), replaced atomically so
that the other scripts' parts are kept."""

from __future__ import annotations

import json
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or what `platform` knows where that is missing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def recorded(path: Path, kind: str, fields: tuple[str, ...]) -> set[tuple]:
    """The `fields` of every record of `kind` in the JSON list at `path` (none if it is missing or
    does not parse: replace_records refuses such a file itself)."""
    try:
        existing = json.loads(Path(path).read_text() or "[]")
    except (OSError, json.JSONDecodeError):
        return set()
    if not isinstance(existing, list):
        return set()
    return {tuple(r[f] for f in fields) for r in existing
            if isinstance(r, dict) and r.get("kind") == kind and set(fields) <= set(r)}
