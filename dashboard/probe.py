"""Builders for the Probe an image page. Pure functions, no Streamlit.

`image_to_input` turns an uploaded PNG/JPEG of any size into one input of the dataset's shape and
type, and lists what it did in words the page shows; `probe` runs the model on it; the figures
mark it in the latent map and show which of the prior's components explain it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from vae_core.evaluate import model_device
from vae_core.seeding import seeded

from .gallery import decodes_in_one_pass, mixture_prior

ACCEPTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG"}  # MPO: a phone camera's JPEG
ORIENTATION_TAG = 0x0112
# Uploads are refused from their header, before decoding, beyond any of these three limits.
MAX_PIXELS = 40_000_000  # width × height: more would take Pillow seconds to decode
MAX_ASPECT = 20  # longer side / shorter side: photos are 4:3 to 16:9, phone panoramas rarely past 8:1, digits ~1:1
MAX_DECODE_BYTES = 128 * 2**20  # Pillow keeps colour at 4 bytes a pixel: 33 megapixels of PNG in colour
WORK_SCALE = 16  # the float steps work on at most 16× the dataset's image per side (448×448 for 28×28)
TILE = 1024  # side of the pieces an upload is converted in while it is shrunk
UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
           7: "TRANSVERSE", 8: "ROTATE_90"}  # EXIF orientation -> the PIL transpose that undoes it
PROBE_COLOUR = "#FFD700"


# --------------------------------------------------------------------------------------------
# Upload -> model input


def border_mean(images: np.ndarray) -> float:
    """Mean value of the outermost ring of pixels, over all images and channels (C, H, W) or (N, C, H, W)."""
    a = np.asarray(images, dtype=np.float64)
    a = a.reshape(-1, *a.shape[-2:])
    ring = np.concatenate([a[:, 0, :], a[:, -1, :], a[:, 1:-1, 0], a[:, 1:-1, -1]], axis=1)
    return float(ring.mean())


def _excess(size: tuple[int, int], target_size: tuple[int, int], orientation: int) -> float:
    """How many times an image of `size` (w, h, as stored) exceeds WORK_SCALE × `target_size` (w, h) once upright.

    The binding side decides, since the image is padded to the target's aspect ratio before resizing.
    """
    width, height = size[::-1] if orientation in (5, 6, 7, 8) else size  # 5-8 swap the sides
    return max(width / target_size[0], height / target_size[1]) / WORK_SCALE


def _decode_bytes_per_pixel(image, header_pixels: int) -> float:
    """Memory decoding `image` takes per pixel of the `header_pixels` its file declares (after any JPEG draft).

    Pillow stores 1 byte a pixel for "1", "L" and "P", 2 for 16-bit greys and 4 for the rest, colour
    included; a progressive JPEG also needs libjpeg's buffer of all its DCT coefficients (2 bytes
    each, full size at any scale), fewer for subsampled chroma.
    """
    width, height = image.size
    stored = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    cost = stored * width * height / header_pixels
    if image.info.get("progressive") or image.info.get("progression"):
        layers = [(h, v) for _, h, v, _ in image.layer]  # per component: its sampling factors
        h_max, v_max = max(h for h, _ in layers), max(v for _, v in layers)
        cost += 2 * sum(h * v for h, v in layers) / (h_max * v_max)
    return cost


def _open(file_bytes: bytes, target_size: tuple[int, int]):
    """The decoded PIL image and its (width, height) as the file declares, or a ValueError the page shows as is.

    The limits above are checked from the header by hand rather than by turning Pillow's
    DecompressionBombWarning into an error: warning filters are process-wide and Streamlit serves
    its sessions from threads. Pillow's own limit (Image.MAX_IMAGE_PIXELS, process-wide too) is left
    as it is, and its DecompressionBombError answered like ours. A JPEG at least twice WORK_SCALE ×
    `target_size` (w, h) is decoded at 1/2, 1/4 or 1/8 scale (libjpeg scales while decoding), so a
    phone photo decodes to a few MB.
    """
    from PIL import Image, UnidentifiedImageError

    if not file_bytes:
        raise ValueError("The uploaded file is empty: upload a PNG or JPEG image.")
    try:
        image = Image.open(io.BytesIO(file_bytes))
        if image.format not in ACCEPTED_FORMATS:
            raise ValueError(f"This is a {image.format} image; upload a PNG or JPEG instead.")
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"The image is too large ({width}×{height} pixels): "
                             f"upload one under {MAX_PIXELS // 1_000_000} megapixels.")
        if max(width, height) > MAX_ASPECT * min(width, height):
            raise ValueError(f"The image is {width}×{height} pixels, more than {MAX_ASPECT} times as long one way "
                             "as the other: crop it closer to the drawing.")
        if ACCEPTED_FORMATS[image.format] == "JPEG":
            excess = _excess(image.size, target_size, image.getexif().get(ORIENTATION_TAG, 1))
            if excess >= 2:  # ask for the size that keeps WORK_SCALE × the target; libjpeg rounds the scale down
                image.draft(None, (math.ceil(width / excess), math.ceil(height / excess)))
        per_pixel = _decode_bytes_per_pixel(image, width * height)
        if width * height * per_pixel > MAX_DECODE_BYTES:
            kind = "progressive JPEG" if image.info.get("progressive") else f"mode {image.mode}"
            raise ValueError(f"The image is too large to decode ({width}×{height} pixels, {kind}): "
                             f"upload one under {int(MAX_DECODE_BYTES / per_pixel / 1e6)} megapixels.")
        image.load()  # decode now: a truncated file fails here, not later
    except UnidentifiedImageError:
        raise ValueError("The upload is not an image Pillow can read: upload a PNG or JPEG file.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the warning where a filter raises it
        raise ValueError(f"The image is too large: upload one under {MAX_PIXELS // 1_000_000} megapixels.") from None
    except (OSError, SyntaxError, EOFError) as error:
        raise ValueError(f"The image could not be decoded (is the file truncated or corrupt?): {error}") from None
    return image, (width, height)


def _convert(piece, mode: str, peak: float | None):
    """`piece` in PIL `mode` ("L" or "RGB"), and the steps that took, in the page's words.

    Every step acts pixel by pixel, so pieces of an image convert exactly as the whole would;
    `peak` is the whole image's maximum grey level for 16-bit and float greys (None otherwise).
    """
    from PIL import Image

    steps = []
    if peak is not None:  # 16-bit or float greys: convert("L") would clip them
        values = np.asarray(piece, dtype=np.float32)
        piece = Image.fromarray(np.clip(values / peak * 255, 0, 255).astype(np.uint8))
        steps.append(f"Rescaled its {'16-bit' if peak > 255 else 'integer'} grey levels to 0–255.")
    if piece.mode in ("RGBA", "LA", "PA") or (piece.mode == "P" and "transparency" in piece.info):
        rgba = piece.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        piece = Image.alpha_composite(white, rgba)
        steps.append("Flattened its transparency onto a white background.")
    if piece.mode != mode:
        piece = piece.convert(mode)
        steps.append("Converted it to greyscale (PIL mode 'L': 0.299 R + 0.587 G + 0.114 B)." if mode == "L"
                     else "Converted it to RGB.")
    return piece, steps


def _convert_and_shrink(image, mode: str, factor: int):
    """`image` converted to `mode` and shrunk `factor` times by area averaging, and the steps taken.

    Done TILE×TILE pixels at a time (a multiple of `factor`, so the averaged blocks are the same as
    for the whole), each piece shrunk before the next is cut: the conversions' copies then cost a
    few MB, however large the upload.
    """
    from PIL import Image

    peak = None
    if image.mode.startswith("I") or image.mode == "F":
        peak = 65535.0 if image.getextrema()[1] > 255 else 255.0
    side, steps = factor * max(1, TILE // factor), []
    small = Image.new(mode, (math.ceil(image.width / factor), math.ceil(image.height / factor)))
    for top in range(0, image.height, side):
        for left in range(0, image.width, side):
            piece = image.crop((left, top, min(left + side, image.width), min(top + side, image.height)))
            piece, steps = _convert(piece, mode, peak)
            small.paste(piece.reduce(factor) if factor > 1 else piece, (left // factor, top // factor))
    if factor > 1:
        steps.append(f"Shrank it to {small.width}×{small.height} pixels by area averaging ({factor}×{factor} blocks), "
                     "so the steps below work on a small copy.")
    return small, steps


def image_to_input(file_bytes: bytes, input_shape, input_type: str, *, binarize: bool = True,
                   dataset_background: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """Convert an uploaded PNG/JPEG to one model input (C, H, W) float32 in [0, 1], and say how.

    Steps: transparency flattened onto white; greyscale (PIL "L"), or RGB for 3-channel data;
    shrunk by area averaging to at most WORK_SCALE × the target per side (a large JPEG is already
    decoded at a reduced scale); inverted when its background (the mean of its border pixels) is on
    the other side of 0.5 from the dataset's (`dataset_background`: dark for digits/MNIST, whose ink
    is 1); padded to the target's aspect ratio with the background colour so the content is not
    stretched; resized with area averaging (box filter) when shrinking, bilinear when enlarging; for
    a binary dataset and `binarize`, thresholded at 0.5. Memory stays within the decoded upload
    (see `_open`'s limits) plus a few MB. Raises ValueError with a one-line message for a bad upload.
    """
    from PIL import Image

    channels, height, width = (int(s) for s in input_shape)
    assert channels in (1, 3), f"only 1- or 3-channel datasets are supported, got {channels} channels"
    image, (file_width, file_height) = _open(file_bytes, (width, height))
    steps = [f"Read a {ACCEPTED_FORMATS[image.format]} image of {file_width}×{file_height} pixels "
             f"(mode {image.mode})."]
    if image.size != (file_width, file_height):
        steps.append(f"Decoded it at 1/{round(file_width / image.width)} scale, {image.width}×{image.height} "
                     "pixels, as JPEG allows (each pixel about the mean of the block it stands for).")
    orientation = image.getexif().get(ORIENTATION_TAG, 1)
    factor = max(1, math.ceil(_excess(image.size, (width, height), orientation)))
    image, conversion_steps = _convert_and_shrink(image, "L" if channels == 1 else "RGB", factor)
    if orientation in UPRIGHT:  # phone photos are often stored sideways; turning commutes with the steps above
        image = image.transpose(getattr(Image.Transpose, UPRIGHT[orientation]))
        steps.append("Rotated it upright as its EXIF orientation tag says.")
    steps += conversion_steps
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # (C, h, w) in [0, 1]
    steps.append("Scaled the pixel values from 0–255 to [0, 1].")

    background = border_mean(pixels)
    dark_dataset = dataset_background < 0.5
    if (background < 0.5) != dark_dataset:
        pixels = 1.0 - pixels
        steps.append(f"Inverted it (x → 1 − x): its border is {'light' if dark_dataset else 'dark'} "
                     f"(mean {background:.2f}) while the dataset's images have a {'dark' if dark_dataset else 'light'} "
                     f"background (mean {dataset_background:.2f}).")
        background = 1.0 - background
    else:
        steps.append(f"Kept its polarity: its border (mean {background:.2f}) already matches the dataset's "
                     f"{'dark' if dark_dataset else 'light'} background.")

    h, w = pixels.shape[1:]
    target_h, target_w = (max(h, round(w * height / width)), max(w, round(h * width / height)))
    if (target_h, target_w) != (h, w):  # pad to the target's aspect ratio, centred
        top, left = (target_h - h) // 2, (target_w - w) // 2
        padded = np.full((channels, target_h, target_w), background, dtype=np.float32)
        padded[:, top:top + h, left:left + w] = pixels
        pixels = padded
        steps.append(f"Padded it to {target_w}×{target_h} with its background colour, so its aspect ratio is "
                     f"kept ({'square' if height == width else f'{width}:{height}'} like the dataset).")
    if pixels.shape[1:] == (height, width):
        steps.append(f"Kept its size: it is already {width}×{height} pixels.")
    else:
        shrinking = pixels.shape[1] >= height
        resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
        channel_images = (Image.fromarray(np.ascontiguousarray(c, dtype=np.float32)) for c in pixels)  # mode "F"
        pixels = np.stack([np.asarray(c.resize((width, height), resample)) for c in channel_images])
        steps.append(f"Resized it to {width}×{height} pixels "
                     + ("by area averaging (each output pixel is the mean of the input pixels it covers)."
                        if shrinking else "with bilinear interpolation."))
    pixels = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    if input_type == "binary":
        if binarize:
            pixels = (pixels >= 0.5).astype(np.float32)
            steps.append("Binarised it at 0.5, as the dataset's test images are binary.")
        else:
            steps.append("Left it grey (not binarised); the model's likelihood is Bernoulli, which accepts grey values.")
    return pixels, steps


# --------------------------------------------------------------------------------------------
# The model on one input


@dataclass(frozen=True)
class ProbeResult:
    """What the model does with one image."""

    reconstruction: np.ndarray | None  # (C, H, W); None where p(x|z) draws pixel by pixel (see `probe`)
    means: dict[str, np.ndarray]  # posterior mean per latent layer
    elbo: float  # mean over draws of z
    responsibilities: np.ndarray | None = None  # (K,) p(k | z) on the prior's layer; None: no mixture
    heads: np.ndarray | None = None  # (K, C, H, W) the components' images
    component_name: str | None = None  # "pseudo-input", "mixture mean"
    images_are_inputs: bool = False


@torch.no_grad()
def probe(model, x: np.ndarray, elbo_samples: int = 64, seed: int = 0) -> ProbeResult:
    """Reconstruction, posterior means per layer, a mean ELBO, and the prior components' responsibilities.

    The responsibilities r_k = p(k | z) are taken at the posterior mean z on the prior's layer (z2
    for the HVAE), as on the Pseudo-inputs page; None when the prior is no mixture. An autoregressive
    p(x|z) takes a pass per pixel to reconstruct: then the reconstruction is None, left to the page
    to draw in the background, and everything else here stays as quick as ever.
    """
    device = model_device(model)
    batch = torch.as_tensor(np.asarray(x, dtype=np.float32)[None], device=device)
    means = {name: m[0].float().cpu().numpy() for name, m in model.latent_means(batch).items()}
    with seeded(seed, device):
        elbo = model(batch.expand(elbo_samples, *batch.shape[1:]), beta=1.0).elbo.mean().item()
    reconstruction = model.reconstruct(batch)[0].float().cpu().numpy() if decodes_in_one_pass(model) else None
    prior = mixture_prior(model)
    if prior is None:
        return ProbeResult(reconstruction, means, elbo)
    code = torch.as_tensor(means[model.prior_layer][None], device=device)
    return ProbeResult(reconstruction, means, elbo,
                       responsibilities=prior.responsibilities(code)[0].double().cpu().numpy(),
                       heads=prior.component_images(model.decode).float().cpu().numpy(),
                       component_name=prior.component_name, images_are_inputs=prior.images_are_inputs)


def top_components(responsibilities: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` most responsible components, most first."""
    return np.argsort(-np.asarray(responsibilities), kind="stable")[:count]


# --------------------------------------------------------------------------------------------
# Figures


def probe_responsibility_figure(responsibilities: np.ndarray, count: int = 20, kind: str = "pseudo-input") -> go.Figure:
    """The `count` largest responsibilities p(k | z) for the probed image, sorted, as bars."""
    r = np.asarray(responsibilities, dtype=np.float64)
    order = top_components(r, min(count, len(r)))
    fig = go.Figure(go.Bar(
        x=[f"k={k}" for k in order], y=r[order].tolist(), customdata=np.cumsum(r[order]).tolist(),
        marker_color="#1f77b4", name="p(k | z)",
        hovertemplate=f"component %{{x}} ({kind})<br>p(k | z) = %{{y:.1%}}<br>top ones together: "
                      "%{customdata:.1%}<extra></extra>"))
    fig.add_hline(y=1 / len(r), line_dash="dot", line_color="rgba(120,120,120,0.8)",
                  annotation_text="uniform 1/K", annotation_position="top right")
    fig.update_layout(xaxis_title=f"component (the {len(order)} most responsible of {len(r)}, sorted)",
                      yaxis_title="responsibility p(k | z)", yaxis_tickformat=".0%", height=340,
                      margin=dict(l=10, r=10, t=30, b=10), showlegend=False)
    return fig


def add_probe_point(fig: go.Figure, xy, name: str) -> go.Figure:
    """Mark the probed image's posterior mean on a latent map with a big gold star (drawn on top)."""
    x, y = (float(v) for v in np.asarray(xy).ravel()[:2])
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=name,
                             marker=dict(symbol="star", size=26, color=PROBE_COLOUR, line=dict(width=2, color="black")),
                             hovertemplate=f"{name}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    return fig
