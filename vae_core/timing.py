"""Durations as people read them, for progress lines and time estimates (CLI and dashboard)."""

from __future__ import annotations

import math


def format_duration(seconds: float | None) -> str:
    """'1 h 02 min', '3 min 05 s', '12 s', or '…' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "…"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
