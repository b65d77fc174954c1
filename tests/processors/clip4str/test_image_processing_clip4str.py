import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from scenetext.processors.clip4str.image_processing_clip4str import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    Clip4StrImageProcessor,
)


def random_rgb(height=37, width=101, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def pil_reference(image, size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3):
    """The official test transform `Resize(size, BICUBIC) -> ToTensor -> Normalize`, spelled out with PIL and
    torch: PIL's bicubic resize of the uint8 image, float32 / 255, then (x - mean) / std."""
    resized = image.resize(size[::-1], Image.Resampling.BICUBIC)
    tensor = torch.from_numpy(np.array(resized)).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (tensor - mean) / std


def process(image, **kwargs):
    return Clip4StrImageProcessor(**kwargs)(image)["pixel_values"]


def normalized(value):
    return (value - 0.5) / 0.5


def test_rgb_pil_matches_the_official_test_transform():
    image = Image.fromarray(random_rgb())
    pixel_values = process(image)
    assert pixel_values.shape == (1, 3, 224, 224)
    assert pixel_values.dtype == torch.float32
    torch.testing.assert_close(pixel_values[0], pil_reference(image), atol=1e-6, rtol=0)


def test_rgb_pil_matches_torchvision_bit_for_bit():
    transforms = pytest.importorskip("torchvision.transforms")
    image = Image.fromarray(random_rgb(seed=1))
    official = transforms.Compose(
        [
            transforms.Resize((224, 224), transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize(0.5, 0.5),
        ]
    )
    assert torch.equal(process(image)[0], official(image))


def test_size_and_clip_statistics_are_configurable():
    image = Image.fromarray(random_rgb())
    pixel_values = process(image, size=(32, 128), image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD)
    assert pixel_values.shape == (1, 3, 32, 128)
    expected = pil_reference(image, (32, 128), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    torch.testing.assert_close(pixel_values[0], expected, atol=1e-6, rtol=0)
    processor = Clip4StrImageProcessor()
    per_call = processor(image, size={"height": 32, "width": 128}, do_normalize=False)["pixel_values"]
    torch.testing.assert_close(per_call[0], pil_reference(image, (32, 128), (0, 0, 0), (1, 1, 1)))


def test_uint8_arrays_and_tensors_match_the_pil_path_exactly():
    array = random_rgb()
    expected = process(Image.fromarray(array))
    assert torch.equal(process(array), expected)
    assert torch.equal(process(torch.from_numpy(array).permute(2, 0, 1)), expected)


def test_float_inputs_match_the_uint8_path_up_to_8_bit_rounding():
    array = random_rgb()
    expected = process(array)
    as_float = array.astype(np.float32) / 255
    for image in (as_float, as_float.astype(np.float64), torch.from_numpy(as_float).permute(2, 0, 1)):
        result = process(image)
        # PIL rounds each pass of its 8-bit resize to integer levels; the float path does not. A level is
        # 2/255 after normalisation; the rounding of two passes stays within 1.5 levels.
        assert (result - expected).abs().max() <= 1.5 * 2 / 255
        assert result.min() >= -1 and result.max() <= 1


def test_bfloat16_tensors_are_accepted():
    gray = torch.full((20, 30), 0.25, dtype=torch.bfloat16)
    torch.testing.assert_close(process(gray), torch.full((1, 3, 224, 224), normalized(0.25)))


def test_gray_images_become_three_equal_channels():
    gray = random_rgb()[..., 0]
    expected = process(Image.fromarray(gray).convert("RGB"))
    assert torch.equal(process(Image.fromarray(gray)), expected)  # mode L
    assert torch.equal(process(gray), expected)  # (H, W)
    assert torch.equal(process(gray[..., None]), expected)  # (H, W, 1)
    assert torch.equal(process(torch.from_numpy(gray)[None]), expected)  # (1, H, W)
    assert torch.equal(expected[:, 0], expected[:, 2])


def test_bilevel_and_cmyk_and_ycbcr_images_are_converted_to_rgb():
    image = Image.fromarray(random_rgb())
    for mode in ("1", "CMYK", "YCbCr"):
        converted = image.convert(mode)
        assert torch.equal(process(converted), process(converted.convert("RGB"))), mode


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_are_composited_over_white_by_default(mode):
    color = (10, 10, 10)
    transparent = Image.new("RGBA", (20, 10), (*color, 0)).convert(mode)
    opaque = Image.new("RGBA", (20, 10), (*color, 255)).convert(mode)
    half = Image.new("RGBA", (20, 10), (*color, 128)).convert(mode)
    torch.testing.assert_close(process(transparent), torch.full((1, 3, 224, 224), 1.0))
    torch.testing.assert_close(process(opaque), torch.full((1, 3, 224, 224), normalized(10 / 255)))
    blended = (10 * 128 + 255 * 127) / 255 / 255
    torch.testing.assert_close(
        process(half), torch.full((1, 3, 224, 224), normalized(blended)), atol=2 / 255, rtol=0
    )
    black = process(transparent, background_color=(0, 0, 0))
    torch.testing.assert_close(black, torch.full((1, 3, 224, 224), -1.0))


def test_alpha_arrays_are_composited_like_pil_images():
    rgba = np.concatenate([random_rgb(), np.full((37, 101, 1), 77, np.uint8)], axis=-1)
    expected = process(Image.fromarray(rgba))
    assert torch.equal(process(rgba), expected)
    float_rgba = torch.from_numpy(rgba.astype(np.float32) / 255).permute(2, 0, 1)
    # PIL also rounds the composite to 8 bits: 2 levels at most in all.
    assert (process(float_rgba) - expected).abs().max() <= 2 * 2 / 255
    gray_alpha = np.stack([np.full((8, 8), 0.2), np.zeros((8, 8))], axis=-1)  # fully transparent
    torch.testing.assert_close(process(gray_alpha), torch.full((1, 3, 224, 224), 1.0))


def test_palette_images_use_their_colours_and_transparency():
    palette = Image.new("P", (16, 8), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    expected = torch.tensor([normalized(v / 255) for v in (200, 100, 50)])[:, None, None]
    torch.testing.assert_close(process(palette)[0], expected.expand(3, 224, 224))
    palette.info["transparency"] = 1
    torch.testing.assert_close(process(palette), torch.full((1, 3, 224, 224), 1.0))


def test_16_bit_images_keep_their_full_range():
    values = np.full((10, 30), 30000, dtype=np.uint16)
    expected = torch.full((1, 3, 224, 224), normalized(30000 / 65535))
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    # PIL's own convert("RGB") clips 30000 to 255, i.e. white; the processor keeps the real grey level.
    assert image.convert("RGB").getpixel((0, 0)) == (255, 255, 255)
    torch.testing.assert_close(process(image), expected)
    torch.testing.assert_close(process(values), expected)
    torch.testing.assert_close(process(image.convert("I")), expected)


def test_16_bit_gradients_match_their_float_equivalent():
    gradient = np.linspace(0, 65535, 40 * 60).reshape(40, 60).astype(np.uint16)
    as_float = gradient.astype(np.float32) / 65535
    buffer = io.BytesIO()
    Image.fromarray(gradient).save(buffer, format="PNG")
    reopened = Image.open(io.BytesIO(buffer.getvalue()))
    assert reopened.mode == "I;16"
    torch.testing.assert_close(process(reopened), process(as_float), atol=1e-6, rtol=0)
    torch.testing.assert_close(process(Image.fromarray(as_float)), process(as_float))  # mode F


def test_exif_orientation_is_applied():
    pixels = random_rgb(20, 60)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: displaying it needs a 90-degree clockwise turn
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    rotated_on_disk = Image.open(io.BytesIO(buffer.getvalue()))
    upright = Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_270)
    assert upright.size == (20, 60)
    assert torch.equal(process(rotated_on_disk), process(upright))
    assert not torch.equal(process(rotated_on_disk), process(Image.fromarray(pixels)))


def test_batches_in_every_form_give_the_same_rows():
    arrays = [random_rgb(seed=seed) for seed in range(3)]
    single_rows = torch.cat([process(a) for a in arrays])
    assert torch.equal(process(arrays), single_rows)
    assert torch.equal(process(tuple(Image.fromarray(a) for a in arrays)), single_rows)
    assert torch.equal(process(np.stack(arrays)), single_rows)  # (N, H, W, C)
    assert torch.equal(process(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)), single_rows)
    mixed = [Image.fromarray(arrays[0]), arrays[1], torch.from_numpy(arrays[2]).permute(2, 0, 1)]
    assert torch.equal(process(mixed), single_rows)


def test_numpy_output_and_reloaded_processor_give_the_same_values(tmp_path):
    processor = Clip4StrImageProcessor(
        size=(32, 128), image_mean=OPENAI_CLIP_MEAN, background_color=(0, 0, 0)
    )
    image = Image.fromarray(random_rgb())
    as_numpy = processor(image, return_tensors="np")["pixel_values"]
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["auto_map"] == {"AutoImageProcessor": "image_processing_clip4str.Clip4StrImageProcessor"}
    assert (tmp_path / "image_processing_clip4str.py").is_file()
    reloaded = Clip4StrImageProcessor.from_pretrained(tmp_path)
    assert reloaded.size == {"height": 32, "width": 128}
    assert tuple(reloaded.background_color) == (0, 0, 0)
    np.testing.assert_array_equal(reloaded(image)["pixel_values"].numpy(), as_numpy)


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (Image.new("RGB", (0, 5)), ValueError, r"image 0: PIL image of size \(0, 5\) is empty"),
        (np.zeros((0, 5, 3), np.uint8), ValueError, r"image 0: numpy array .* of shape \(0, 5, 3\) is empty"),
        (torch.zeros(3, 8, 0), ValueError, r"image 0: torch tensor .* of shape \(3, 8, 0\) is empty"),
        (
            np.zeros((8, 8, 5), np.uint8),
            ValueError,
            r"image 0: numpy array .* shape \(8, 8, 5\) is not an image",
        ),
        (torch.zeros(5, 8, 8), ValueError, r"image 0: torch tensor .* shape \(5, 8, 8\) is not an image"),
        (np.zeros((2, 3, 8, 8, 3), np.uint8), ValueError, r"shape \(2, 3, 8, 8, 3\) is not an image"),
        (np.zeros(8, np.uint8), ValueError, r"shape \(8,\) is not an image"),
        (
            np.full((8, 8), 255.0),
            ValueError,
            r"image 0: float image has values in \[255, 255\]; expected \[0, 1\]",
        ),
        (np.full((8, 8), np.nan), ValueError, "image 0: float image contains NaN"),
        (
            np.zeros((8, 8), np.int64),
            TypeError,
            "image 0: .* has dtype int64; expected uint8, uint16 or float",
        ),
        ("picture.png", TypeError, "image 0: expected a PIL image, numpy array or torch tensor, got str"),
        ([], ValueError, "images is empty"),
    ],
)
def test_bad_images_get_errors_naming_the_image(images, error, message):
    with pytest.raises(error, match=message):
        process(images)


def test_the_error_names_the_failing_image_of_a_batch():
    # A channels-first numpy array is the usual mistake: numpy inputs are channels last.
    batch = [random_rgb(), np.zeros((3, 32, 128), np.uint8)]
    with pytest.raises(ValueError, match=r"image 1: numpy array \(channels last.*shape \(3, 32, 128\)"):
        process(batch)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be positive integers"),
        ({"size": (1, 2, 3)}, "size must be an int"),
        ({"size": {"shortest_edge": 224}}, "size must have the keys 'height' and 'width'"),
        ({"image_mean": (0.5, 0.5)}, "image_mean must be one number or three"),
        ({"image_std": 0}, "image_std must not contain 0"),
        ({"background_color": (256, 0, 0)}, "background_color must be three integers"),
    ],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Clip4StrImageProcessor(**kwargs)


def test_unknown_return_tensors_is_rejected():
    with pytest.raises(ValueError, match="return_tensors must be 'pt', 'np' or None"):
        Clip4StrImageProcessor()(random_rgb(), return_tensors="tf")
