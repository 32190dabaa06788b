"""Image grids as uint8 arrays and PNG bytes (used by the CLI's `sample` and the dashboard)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np


def image_grid(images, columns: int | None = None, padding: int = 1, scale: int = 1,
               background: float = 1.0) -> np.ndarray:
    """Tile images (N, C, H, W) in [0, 1] into one uint8 image (rows, cols) or (rows, cols, 3).

    `scale` repeats pixels (nearest neighbour) so tiny images such as 8x8 digits stay crisp.
    """
    images = np.asarray(images, dtype=np.float32)
    assert images.ndim == 4, f"expected (N, C, H, W), got shape {images.shape}"
    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    if scale > 1:
        images = images.repeat(scale, axis=2).repeat(scale, axis=3)
        h, w = h * scale, w * scale
    grid = np.full((c, rows * (h + padding) + padding, columns * (w + padding) + padding), background, np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = image
    grid = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(array: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(array))
    return path
