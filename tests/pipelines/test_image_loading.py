"""`load_rgb_image`: every input kind and PIL mode becomes upright 8-bit RGB with its value range kept."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from scenetext.pipelines.image_loading import load_rgb_image

EXIF_ORIENTATION = 0x0112


def _encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _pixels(image) -> np.ndarray:
    return np.asarray(load_rgb_image(image), dtype=np.int16)


def test_exif_rotated_jpeg_reads_as_its_upright_original(tmp_path):
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:10, :20] = (250, 30, 30)  # a red block in the top-left corner tells the orientation apart
    upright[30:, 40:] = (30, 30, 250)
    # Orientation 6: the camera stored the picture turned 90 degrees counter-clockwise; viewers turn it back.
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_encoded(stored, "JPEG", quality=95, exif=exif))
    reference = _pixels(Image.fromarray(upright))

    for source in (path, str(path), path.read_bytes(), Image.open(path)):
        read = _pixels(source)
        assert read.shape == (40, 60, 3)
        assert np.abs(read - reference).mean() < 3
    assert load_rgb_image(path, apply_exif_orientation=False).size == (40, 60)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("1", 1, (255, 255, 255)),
        ("P", 0, (0, 0, 0)),
        ("RGBA", (200, 100, 50, 255), (200, 100, 50)),
        ("RGBA", (0, 0, 0, 0), (255, 255, 255)),  # transparent: the white background
        ("RGBA", (0, 0, 0, 128), (127, 127, 127)),  # half transparent black over white
        ("LA", (0, 0), (255, 255, 255)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("YCbCr", (128, 128, 128), (128, 128, 128)),
        ("I;16", 30000, (117, 117, 117)),
        ("I;16B", 65535, (255, 255, 255)),
        ("I", 65535, (255, 255, 255)),
        ("I", 257 * 20, (20, 20, 20)),
        ("F", 0.5, (128, 128, 128)),
    ],
)
def test_each_mode_gives_the_expected_rgb(mode, value, expected):
    image = Image.new(mode, (3, 2), value)
    rgb = load_rgb_image(image)
    assert rgb.mode == "RGB" and rgb.size == (3, 2)
    assert rgb.getpixel((1, 1)) == expected


def test_palette_transparency_is_composited_on_white():
    image = Image.new("P", (2, 2), 0)
    image.putpalette([10, 20, 30] * 256)
    image.info["transparency"] = 0
    assert load_rgb_image(image).getpixel((0, 0)) == (255, 255, 255)


def test_float_and_int_images_outside_their_usual_range_are_stretched():
    assert load_rgb_image(Image.fromarray(np.array([[-1.0, 3.0]], np.float32))).getpixel((1, 0)) == (255,) * 3
    wide = Image.fromarray(np.array([[0, 1_000_000]], np.int32))
    assert [load_rgb_image(wide).getpixel((x, 0))[0] for x in (0, 1)] == [0, 255]


def test_sixteen_bit_png_keeps_its_contrast(tmp_path):
    gradient = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode.startswith("I")
    assert np.asarray(load_rgb_image(path))[0, :, 0].tolist() == [0, 64, 128, 255]


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((2, 3), 200, np.uint8), 200),
        (np.full((2, 3, 1), 200, np.uint8), 200),
        (np.full((2, 3, 3), 0.5, np.float32), 128),
        (np.full((2, 3, 3), 0.5, np.float64), 128),
        (np.full((2, 3), 65535, np.uint16), 255),
        (np.full((2, 3), True), 255),
        (np.dstack([np.zeros((2, 3, 3), np.uint8), np.full((2, 3), 255, np.uint8)]), 0),  # opaque black RGBA
    ],
)
def test_numpy_arrays_are_scaled_by_their_dtype(array, expected):
    rgb = load_rgb_image(array)
    assert rgb.size == (3, 2)
    assert rgb.getpixel((0, 0)) == (expected,) * 3


def test_tensors_are_channels_first_unless_the_first_axis_cannot_be_channels():
    chw = torch.zeros(3, 5, 7)
    chw[0] = 1.0
    assert load_rgb_image(chw).size == (7, 5) and load_rgb_image(chw).getpixel((0, 0)) == (255, 0, 0)
    hwc = chw.permute(1, 2, 0).contiguous()
    assert load_rgb_image(hwc).size == (7, 5) and load_rgb_image(hwc).getpixel((0, 0)) == (255, 0, 0)
    assert load_rgb_image(torch.full((5, 7), 0.25, dtype=torch.bfloat16)).getpixel((0, 0)) == (64, 64, 64)


def test_bad_inputs_are_errors_that_name_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        load_rgb_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    with pytest.raises(ValueError, match=r"notes\.txt: not an image file"):
        load_rgb_image(tmp_path / "notes.txt")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png: empty file"):
        load_rgb_image(tmp_path / "empty.png")
    truncated = _encoded(Image.new("RGB", (50, 50)), "PNG")[:60]
    with pytest.raises(ValueError, match=r"image bytes \(60 bytes\): unreadable image"):
        load_rgb_image(truncated)
    with pytest.raises(TypeError, match="got int"):
        load_rgb_image(3)
    with pytest.raises(TypeError, match="dtype int64"):
        load_rgb_image(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 5\)"):
        load_rgb_image(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        load_rgb_image(np.full((2, 2), 2.0))
    with pytest.raises(ValueError, match="empty"):
        load_rgb_image(np.zeros((0, 4), np.uint8))


def test_stored_orientation_stays_stored_for_later_readers(tmp_path):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_encoded(Image.new("RGB", (60, 40)), "JPEG", exif=exif))
    stored = load_rgb_image(path, apply_exif_orientation=False)
    assert stored.size == (60, 40)
    assert load_rgb_image(stored).size == (60, 40)
