"""The Probe an image builders: converting uploads, probing a model, the figures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dashboard import probe

DIGITS = (1, 8, 8)


def digit_image(size=(100, 60), background="white", ink="black", mode="RGB") -> Image.Image:
    """A thick ring ("0") centred on a plain background, `size` = (width, height)."""
    image = Image.new(mode, size, background)
    w, h = size
    side = min(w, h) * 0.8
    box = [w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2]
    ImageDraw.Draw(image).ellipse(box, outline=ink, width=max(2, int(side / 4)))
    return image


def encoded(image: Image.Image, fmt="PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def assert_dark_ring(x: np.ndarray):
    """Background dark (corners 0), ink bright on the ring, hole in the middle darker than the ring."""
    grey = x[0]
    assert grey[0, 0] == grey[0, -1] == grey[-1, 0] == grey[-1, -1] == 0.0
    assert grey.max() > 0.5


def test_png_of_another_size_with_a_light_background_is_inverted_and_resized():
    x, steps = probe.image_to_input(encoded(digit_image((100, 60))), DIGITS, "binary")
    assert x.shape == DIGITS and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}  # binarised
    assert_dark_ring(x)
    text = " ".join(steps)
    for words in ("100×60", "greyscale", "Inverted", "Padded it to 100×100", "Resized it to 8×8", "area averaging",
                  "Binarised"):
        assert words in text, words


def test_gray_dataset_keeps_grey_levels_in_unit_range():
    x, steps = probe.image_to_input(encoded(digit_image((100, 60))), (1, 28, 20), "gray")
    assert x.shape == (1, 28, 20) and x.min() >= 0.0 and x.max() <= 1.0
    assert len(np.unique(x)) > 2  # antialiased edges survive: not binarised
    assert "Padded it to 100×140" in " ".join(steps)  # the 20:28 aspect of the target, not a square
    assert not any("Binarised" in s for s in steps)


def test_small_uploads_are_enlarged_and_exact_sizes_kept():
    x, steps = probe.image_to_input(encoded(digit_image((4, 4))), (1, 28, 28), "gray")
    assert x.shape == (1, 28, 28) and "bilinear" in steps[-1]
    x, steps = probe.image_to_input(encoded(digit_image((8, 8))), DIGITS, "gray")
    assert x.shape == DIGITS and "already 8×8" in steps[-1]


def test_binarisation_can_be_turned_off():
    x, steps = probe.image_to_input(encoded(digit_image((64, 64))), DIGITS, "binary", binarize=False)
    assert len(np.unique(x)) > 2 and "Left it grey" in steps[-1]


def test_jpeg():
    x, steps = probe.image_to_input(encoded(digit_image((300, 200)), "JPEG", quality=80), DIGITS, "binary")
    assert x.shape == DIGITS
    assert_dark_ring(x)
    assert steps[0].startswith("Read a JPEG image of 300×200")


def test_rgba_png_with_a_transparent_background():
    image = digit_image((80, 80), background=(0, 0, 0, 0), ink=(0, 0, 0, 255), mode="RGBA")  # black ink, clear bg
    x, steps = probe.image_to_input(encoded(image), DIGITS, "binary")
    assert_dark_ring(x)  # flattened onto white, then inverted: ink bright, background dark
    assert any("transparency" in s for s in steps)


def test_dark_background_upload_is_not_inverted_and_light_datasets_flip_the_rule():
    light_ink = encoded(digit_image((50, 50), background="black", ink="white"))
    x, steps = probe.image_to_input(light_ink, DIGITS, "binary")
    assert_dark_ring(x) and any("Kept its polarity" in s for s in steps)
    y, steps = probe.image_to_input(light_ink, DIGITS, "binary", dataset_background=0.9)  # a light-background dataset
    assert y[0, 0, 0] == 1.0 and any("Inverted" in s for s in steps)


def test_sixteen_bit_greys_are_rescaled_not_clipped():
    values = np.full((40, 40), 65535, dtype=np.uint16)
    values[10:30, 10:30] = 0  # a black square on white, 16 bits per pixel
    x, steps = probe.image_to_input(encoded(Image.fromarray(values)), DIGITS, "binary")
    assert x[0, 0, 0] == 0.0 and x[0, 4, 4] == 1.0  # inverted square in the middle, not an all-white clip
    assert any("16-bit" in s for s in steps)


@pytest.mark.parametrize("payload, words", [
    (b"this is a text file renamed to .png\n", "not an image"),
    (encoded(digit_image((100, 60)))[:150], "truncated"),
    (b"", "empty"),
    (encoded(digit_image((20, 20)), "GIF"), "GIF image"),
])
def test_bad_uploads_raise_a_clear_value_error(payload, words):
    with pytest.raises(ValueError, match=words) as info:
        probe.image_to_input(payload, DIGITS, "binary")
    assert "\n" not in str(info.value)  # one line for st.error


def test_border_mean():
    images = np.zeros((2, 1, 5, 5), dtype=np.float32)
    images[:, :, 0, :] = 1.0  # top rows lit: 5 of the 16 ring pixels
    assert probe.border_mean(images) == pytest.approx(5 / 16)
    assert probe.border_mean(images[0]) == pytest.approx(5 / 16)


@pytest.mark.parametrize("prior, name", [("vampprior", "pseudo-input"), ("mog", "mixture mean"), ("standard", None)])
def test_probe_a_tiny_model(build, digits, prior, name):
    model = build(prior=prior).eval()
    out = probe.probe(model, digits.x_test[0])
    assert out.reconstruction.shape == DIGITS and set(out.means) == {"z"}
    assert np.isfinite(out.elbo) and out.component_name == name
    if name is None:
        assert out.responsibilities is None and out.heads is None
    else:
        assert out.responsibilities.shape == (5,) and out.responsibilities.sum() == pytest.approx(1.0)
        assert out.heads.shape == (5, *DIGITS) and out.images_are_inputs == (prior == "vampprior")


def test_probe_an_hvae_uses_the_top_layer(build, digits):
    out = probe.probe(build(model="hvae", prior="vampprior").eval(), digits.x_test[0])
    assert set(out.means) == {"z1", "z2"} and out.responsibilities.shape == (5,)


def test_responsibility_figure_is_sorted_and_cut_to_count():
    r = np.array([0.05, 0.5, 0.1, 0.3, 0.05])
    fig = probe.probe_responsibility_figure(r, count=3)
    (bars,) = fig.data
    assert list(bars.x) == ["k=1", "k=3", "k=2"] and list(bars.y) == [0.5, 0.3, 0.1]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert list(probe.top_components(r, 2)) == [1, 3]


def test_add_probe_point_draws_a_star_on_top():
    import plotly.graph_objects as go

    fig = probe.add_probe_point(go.Figure(go.Scatter(x=[0], y=[0])), np.array([1.5, -2.0]), "your image")
    star = fig.data[-1]
    assert star.name == "your image" and star.marker.symbol == "star" and (star.x[0], star.y[0]) == (1.5, -2.0)


# --------------------------------------------------------------------------------------------
# Large uploads: shrunk before padding, refused from the header (memory: test_dashboard_probe_memory.py)


def test_the_conversion_never_touches_the_process_wide_warning_filters(monkeypatch):
    """Streamlit serves its sessions from threads, and warnings.catch_warnings is not thread-safe."""
    class NoWarnings:
        def __getattr__(self, name):
            raise AssertionError(f"warnings.{name}: warning filters are process-wide, a session must not change them")

    monkeypatch.setattr(probe, "warnings", NoWarnings(), raising=False)
    x, _ = probe.image_to_input(encoded(digit_image((100, 60))), DIGITS, "binary")
    assert x.shape == DIGITS
    monkeypatch.setattr(probe, "MAX_PIXELS", 5_000)
    with pytest.raises(ValueError, match="too large"):
        probe.image_to_input(encoded(digit_image((100, 60))), DIGITS, "binary")


def test_pillows_own_decompression_bomb_limit_reads_as_too_large(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # 100×60 is more than twice it: Pillow raises
    with pytest.raises(ValueError, match="too large: upload one under 40 megapixels"):
        probe.image_to_input(encoded(digit_image((100, 60))), DIGITS, "binary")


def test_aspect_ratios_up_to_the_limit_convert_and_longer_strips_are_refused_in_one_line():
    x, _ = probe.image_to_input(encoded(digit_image((20 * 12, 12))), DIGITS, "gray")
    assert x.shape == DIGITS
    with pytest.raises(ValueError, match="more than 20 times as long") as info:
        probe.image_to_input(encoded(digit_image((12, 20 * 12 + 1))), DIGITS, "gray")
    assert "\n" not in str(info.value)


def test_shrinking_before_padding_matches_area_averaging_the_whole_image():
    image = digit_image((2000, 1200), mode="L")
    x, steps = probe.image_to_input(encoded(image), DIGITS, "gray")
    assert "Shrank it to 125×75 pixels by area averaging (16×16 blocks)" in " ".join(steps)
    grey = 1.0 - np.asarray(image, dtype=np.float64) / 255  # inverted: light paper
    padded = np.full((2000, 2000), probe.border_mean(grey[None]))
    padded[400:1600] = grey
    reference = padded.reshape(8, 250, 8, 250).mean(axis=(1, 3))  # each output pixel: the mean of its 250×250
    error = np.abs(x[0] - reference)  # the 16×16 blocks straddling an output pixel's edge are split evenly
    assert error.max() < 1 / 15.625 and error.mean() < 0.005  # at most one block's share of 15.625 per side


def test_pieces_join_exactly_whatever_the_tile_size(monkeypatch):
    image = digit_image((900, 700)).convert("P")  # a palette image with a transparent background colour
    payload = encoded(image, transparency=image.getpixel((0, 0)))
    whole, steps = probe.image_to_input(payload, (1, 28, 28), "gray")
    assert any("transparency" in s for s in steps)
    monkeypatch.setattr(probe, "TILE", 100)
    pieces, _ = probe.image_to_input(payload, (1, 28, 28), "gray")
    assert np.array_equal(whole, pieces)


def test_a_large_sideways_jpeg_is_decoded_small_turned_upright_and_matches_the_upright_png():
    upright = Image.new("L", (1600, 2400), "white")
    ImageDraw.Draw(upright).rectangle([200, 300, 700, 1100], fill="black")  # a block in the top-left quarter
    exif = Image.Exif()
    exif[probe.ORIENTATION_TAG] = 6  # stored turned a quarter; ROTATE_270 turns it back
    sideways = encoded(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif)
    x, steps = probe.image_to_input(sideways, (1, 28, 20), "gray")
    y, _ = probe.image_to_input(encoded(upright), (1, 28, 20), "gray")
    text = " ".join(steps)
    assert "2400×1600" in steps[0] and "Decoded it at 1/4 scale, 600×400" in text and "Rotated it upright" in text
    assert x.shape == y.shape == (1, 28, 20) and np.abs(x - y).mean() < 0.02
    assert x[0, :14, :10].mean() > 0.3 > x[0, 14:, 10:].mean()  # the block is top-left, as the photo was taken
