"""Uploads of extreme sizes and shapes: each converts within PEAK_MB of memory or is refused in one line.

The conversions run in one fresh subprocess, each in a child forked from it after the imports: the
child measures its peak resident memory above its resident memory at the start (Linux: the peak
is reset through /proc/self/clear_refs, then read as VmHWM), with its address space capped so that
a runaway allocation fails fast instead of swapping the machine. The PNGs are written by hand, row
by row, so even the 40-megapixel ones cost the test process little.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from dashboard import probe

ROOT = Path(__file__).resolve().parent.parent
PEAK_MB = 200  # what one conversion may take above the memory before it
TARGET = (1, 28, 28)


def png(width: int, height: int, background: bytes = b"\xff", ink: bytes = b"\x00", colour_type: int = 0,
        bit_depth: int = 8, header_size: tuple[int, int] | None = None) -> bytes:
    """A PNG of a bar of `ink` across the middle third of a `background`, zlib-streamed one row at a time.

    `background`/`ink` are one pixel's bytes for `colour_type` (0 grey, 2 RGB, 6 RGBA) and
    `bit_depth`; `header_size` makes the header claim another size than the rows written.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    a, b = width // 3, 2 * width // 3
    plain = b"\0" + background * width  # filter byte 0: the row as is
    inked = b"\0" + background * a + ink * (b - a) + background * (width - b)
    z = zlib.compressobj(6)
    body = b"".join(z.compress(inked if height // 3 <= y < 2 * height // 3 else plain) for y in range(height))
    header = struct.pack(">IIBBBBB", *(header_size or (width, height)), bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body + z.flush()) + chunk(b"IEND", b"")


def jpeg(size: tuple[int, int], mode: str, **options) -> bytes:
    """A JPEG of a dark bar on a light background, saved by Pillow with `options`."""
    image = Image.new(mode, size, "white")
    w, h = size
    ImageDraw.Draw(image).rectangle([w // 3, h // 3, 2 * w // 3, 2 * h // 3], fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80, **options)
    return buffer.getvalue()


def phone_photo() -> bytes:
    """A 12-megapixel RGB JPEG stored sideways, as phones do (EXIF orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg((4032, 3024), "RGB", exif=exif)


def truncated(payload: bytes) -> bytes:
    """The first half of a file, as an interrupted upload leaves it."""
    return payload[: len(payload) // 2]


TRANSPARENT, OPAQUE_BLACK = b"\xff\xff\xff\x00", b"\x00\x00\x00\xff"
CASES = {  # name: (what makes the file, None if it must convert, else words its one-line refusal must contain)
    "12000x2000 grey": (lambda: png(12_000, 2_000), None),
    "12000x2000 RGBA": (lambda: png(12_000, 2_000, TRANSPARENT, OPAQUE_BLACK, colour_type=6), None),
    "40000x1000": (lambda: png(40_000, 1_000), "times as long"),
    "40000000x1": (lambda: png(40_000_000, 1), "times as long"),
    "1x1": (lambda: png(1, 1), None),
    "1x40000": (lambda: png(1, 40_000), "times as long"),
    "header 100000x100000, tiny body": (lambda: png(100, 1, header_size=(100_000, 100_000)), "too large"),
    "truncated 12000x2000": (lambda: truncated(png(12_000, 2_000)), "truncated"),
    "40 MP grey 8000x5000": (lambda: png(8_000, 5_000), None),
    "33 MP RGBA 7000x4700": (lambda: png(7_000, 4_700, TRANSPARENT, OPAQUE_BLACK, colour_type=6), None),
    "40 MP RGBA 8000x5000": (lambda: png(8_000, 5_000, TRANSPARENT, OPAQUE_BLACK, colour_type=6),
                             "too large to decode (8000×5000 pixels, mode RGBA): upload one under 33 megapixels"),
    "24 MP 16-bit grey 6000x4000": (lambda: png(6_000, 4_000, b"\xff\xff", b"\0\0", bit_depth=16), None),
    "40 MP progressive grey JPEG": (lambda: jpeg((8_000, 5_000), "L", progressive=True), None),
    "12 MP phone JPEG, sideways": (phone_photo, None),
}


def _status_kb(key: str) -> int:
    return int(re.search(key + r":\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _convert_and_report(payload: bytes) -> dict:
    """In a forked child: convert `payload` and measure its peak resident memory above the start."""
    import resource

    limit = _status_kb("VmSize") * 1024 + 2 * 2**30  # address space: 2 GiB more than now
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak, to the resident size now
    try:
        x, steps = probe.image_to_input(payload, TARGET, "binary")
        outcome = {"shape": list(x.shape), "steps": steps}
    except ValueError as error:
        outcome = {"refused": str(error)}
    except Exception as error:  # MemoryError above all: reported, so the test names the case
        outcome = {"crashed": f"{type(error).__name__}: {error}"}
    return {**outcome, "peak_mb": (_status_kb("VmHWM") - before) / 1024}


def _measure(paths: list[str]) -> None:
    """Subprocess side: print one JSON line per file, each converted in a child forked from the same state.

    Forking keeps the cases apart: memory that one conversion freed but the allocator kept would
    otherwise be reused by the next without showing in its peak.
    """
    probe.image_to_input(png(50, 30), TARGET, "binary")  # warm-up: lazy imports and first allocations
    for path in paths:
        payload = Path(path).read_bytes()
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read)
            try:
                os.write(write, json.dumps(_convert_and_report(payload)).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            print(pipe.read() or json.dumps({"crashed": "the child died", "peak_mb": 0}), flush=True)
        os.waitpid(child, 0)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict:
    """Each case's outcome and peak memory, from one subprocess converting them all."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("measuring peak memory needs Linux's /proc/self/clear_refs")
    folder = tmp_path_factory.mktemp("uploads")
    paths = []
    for i, (make, _) in enumerate(CASES.values()):
        paths.append(folder / f"{i}.bin")
        paths[-1].write_bytes(make())
    run = subprocess.run([sys.executable, __file__, *map(str, paths)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert len(lines) == len(CASES), run.stdout + run.stderr[-3000:]
    return dict(zip(CASES, map(json.loads, lines)))


@pytest.mark.parametrize("name", CASES)
def test_an_extreme_upload_converts_in_bounded_memory_or_is_refused_in_one_line(outcomes, name):
    outcome, refusal = outcomes[name], CASES[name][1]
    print(f"{name}: peak {outcome['peak_mb']:.1f} MB above the baseline")  # shown with pytest -s
    assert "crashed" not in outcome, f"{name}: {outcome['crashed']}"
    assert outcome["peak_mb"] < PEAK_MB, f"{name} took {outcome['peak_mb']:.0f} MB"
    if refusal is None:
        assert outcome.get("shape") == list(TARGET), outcome
    else:
        assert refusal in outcome.get("refused", ""), outcome
        assert "\n" not in outcome["refused"]


def test_a_phone_photo_is_decoded_small_and_turned_upright(outcomes):
    steps = " ".join(outcomes["12 MP phone JPEG, sideways"]["steps"])
    assert "Read a JPEG image of 4032×3024" in steps and "Decoded it at 1/8 scale, 504×378" in steps
    assert "Rotated it upright" in steps


@pytest.mark.parametrize("pillow_limit", [Image.MAX_IMAGE_PIXELS, None])
def test_a_header_claiming_ten_gigapixels_is_refused_whatever_pillows_own_limit(monkeypatch, pillow_limit):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)  # None: Pillow's check turned off
    with pytest.raises(ValueError, match="too large.*upload one under 40 megapixels") as info:
        probe.image_to_input(png(100, 1, header_size=(100_000, 100_000)), TARGET, "binary")
    assert "\n" not in str(info.value)


if __name__ == "__main__":
    _measure(sys.argv[1:])
