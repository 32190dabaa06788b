"""Builders for the Probe an image page. Pure functions, no Streamlit.

`image_to_input` turns an uploaded PNG/JPEG of any size into one input of the dataset's shape and
type, and lists what it did in words the page shows; `probe` runs the model on it; the figures
mark it in the latent map and show which of the prior's components explain it.
"""

from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
import torch

from vae_core.evaluate import model_device

from .gallery import component_responsibilities, decode, prior_components

ACCEPTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG"}  # MPO: a phone camera's JPEG
ORIENTATION_TAG = 0x0112
MAX_PIXELS = 40_000_000  # larger uploads are refused before decoding (Pillow would spend seconds and GBs)
PROBE_COLOUR = "#FFD700"


# --------------------------------------------------------------------------------------------
# Upload -> model input


def border_mean(images: np.ndarray) -> float:
    """Mean value of the outermost ring of pixels, over all images and channels (C, H, W) or (N, C, H, W)."""
    a = np.asarray(images, dtype=np.float64)
    a = a.reshape(-1, *a.shape[-2:])
    ring = np.concatenate([a[:, 0, :], a[:, -1, :], a[:, 1:-1, 0], a[:, 1:-1, -1]], axis=1)
    return float(ring.mean())


def _open(file_bytes: bytes):
    """A fully decoded PIL image, or a ValueError whose message the page shows as is.

    The pixel cap is checked from the header by hand rather than by turning Pillow's
    DecompressionBombWarning into an error: warning filters are process-wide and Streamlit serves
    its sessions from threads. Pillow's own limit (Image.MAX_IMAGE_PIXELS, process-wide too) is left
    as it is, and its DecompressionBombError answered like ours.
    """
    from PIL import Image, UnidentifiedImageError

    if not file_bytes:
        raise ValueError("The uploaded file is empty: upload a PNG or JPEG image.")
    try:
        image = Image.open(io.BytesIO(file_bytes))
        if image.format not in ACCEPTED_FORMATS:
            raise ValueError(f"This is a {image.format} image; upload a PNG or JPEG instead.")
        if image.width * image.height > MAX_PIXELS:
            raise ValueError(f"The image is too large ({image.width}×{image.height} pixels): "
                             f"upload one under {MAX_PIXELS // 1_000_000} megapixels.")
        image.load()  # decode now: a truncated file fails here, not later
    except UnidentifiedImageError:
        raise ValueError("The upload is not an image Pillow can read: upload a PNG or JPEG file.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the warning where a filter raises it
        raise ValueError(f"The image is too large: upload one under {MAX_PIXELS // 1_000_000} megapixels.") from None
    except (OSError, SyntaxError, EOFError) as error:
        raise ValueError(f"The image could not be decoded (is the file truncated or corrupt?): {error}") from None
    return image


def image_to_input(file_bytes: bytes, input_shape, input_type: str, *, binarize: bool = True,
                   dataset_background: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """Convert an uploaded PNG/JPEG to one model input (C, H, W) float32 in [0, 1], and say how.

    Steps: transparency flattened onto white; greyscale (PIL "L"), or RGB for 3-channel data;
    inverted when its background (the mean of its border pixels) is on the other side of 0.5 from
    the dataset's (`dataset_background`: dark for digits/MNIST, whose ink is 1); padded to the
    target's aspect ratio with the background colour so the content is not stretched; resized with
    area averaging (box filter) when shrinking, bilinear when enlarging; for a binary dataset and
    `binarize`, thresholded at 0.5. Raises ValueError with a one-line message for a bad upload.
    """
    from PIL import Image, ImageOps

    channels, height, width = (int(s) for s in input_shape)
    assert channels in (1, 3), f"only 1- or 3-channel datasets are supported, got {channels} channels"
    image = _open(file_bytes)
    steps = [f"Read a {ACCEPTED_FORMATS[image.format]} image of {image.width}×{image.height} pixels "
             f"(mode {image.mode})."]
    if image.getexif().get(ORIENTATION_TAG, 1) != 1:  # phone photos are often stored sideways
        image = ImageOps.exif_transpose(image)
        steps.append("Rotated it upright as its EXIF orientation tag says.")
    if image.mode.startswith("I") or image.mode == "F":  # 16-bit or float greys: convert("L") would clip them
        values = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / peak * 255, 0, 255).astype(np.uint8))
        steps.append(f"Rescaled its {'16-bit' if peak > 255 else 'integer'} grey levels to 0–255.")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
        steps.append("Flattened its transparency onto a white background.")
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
        steps.append("Converted it to greyscale (PIL mode 'L': 0.299 R + 0.587 G + 0.114 B)." if mode == "L"
                     else "Converted it to RGB.")
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


@torch.no_grad()
def probe(model, x: np.ndarray, elbo_samples: int = 64, seed: int = 0) -> dict:
    """Reconstruction, posterior means per layer, a mean ELBO, and the prior components' responsibilities.

    The responsibilities r_k = p(k | z) are taken at the posterior mean z on the prior's layer (z2
    for the HVAE), as on the Pseudo-inputs page; None for a standard normal prior.
    """
    device = model_device(model)
    batch = torch.as_tensor(np.asarray(x, dtype=np.float32)[None], device=device)
    means = {name: m[0].float().cpu().numpy() for name, m in model.latent_means(batch).items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        elbo = model(batch.expand(elbo_samples, *batch.shape[1:]), beta=1.0).elbo.mean().item()
    out = {"reconstruction": model.reconstruct(batch)[0].float().cpu().numpy(), "means": means, "elbo": elbo,
           "responsibilities": None, "heads": None, "kind": None}
    components = prior_components(model)
    if components is not None:
        top = means[model.latent_layers[-1]]
        out["responsibilities"] = component_responsibilities(top[None], *components)[0]
        pseudo = hasattr(model.prior, "pseudo_inputs")
        out["kind"] = "pseudo-input" if pseudo else "decoded mean"
        out["heads"] = model.prior.pseudo_inputs.float().cpu().numpy() if pseudo else decode(model, components[0])
    return out


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
