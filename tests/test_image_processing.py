"""Image processors against transformers' goldens (both back-ends), plus input conversion and bad-input errors."""

import functools
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from golden.preprocess_goldens import digest, load_float_arrays, load_float_meta, load_image_arrays, load_meta
from golden.synthetic_images import CASES, CASES_BY_NAME, FLOAT_CASES, FLOAT_CASES_BY_NAME, draw, draw_float
from siglip2_ref.preprocess.images import (
    FixResImageProcessor,
    ImageFileError,
    ImageInputError,
    ImageProcessor,
    ImageTooLargeError,
    NaFlexImageProcessor,
    get_image_size_for_max_num_patches,
    load_image_processor,
    patchify,
    unpatchify,
)
from siglip2_ref.porting.tolerances import assert_close

META = load_meta()
ARRAYS = load_image_arrays()
FLOAT_META = load_float_meta()
FLOAT_ARRAYS = load_float_arrays()


def processor_for(config_name, backend):
    cfg = {k: v for k, v in META["configs"][config_name].items() if k not in ("image_processor_type", "processor_class")}
    return ImageProcessor("naflex" if config_name.startswith("naflex") else "fixres", backend, **cfg)


@functools.lru_cache(maxsize=2)
def drawn(case_name, folder):
    return draw(CASES_BY_NAME[case_name], folder)


def run_case(case_name, config_name, backend, tmp_path_factory):
    folder = str(tmp_path_factory.getbasetemp())  # one folder for the session: files are drawn once
    return processor_for(config_name, backend)(drawn(case_name, folder))


FULL = sorted(ARRAYS)  # sorted by case, so the drawing cache is hit
DIGESTS = sorted(k for k in META["digests"] if k not in ARRAYS)


@pytest.mark.parametrize("key", FULL)
def test_matches_stored_golden(key, tmp_path_factory):
    case, config, backend = key.split("|")
    ours, expected = run_case(case, config, backend, tmp_path_factory), ARRAYS[key]
    assert set(ours) == set(expected)
    for field, want in expected.items():
        assert ours[field].dtype == want.dtype, f"{key} {field} dtype"
        assert_close(ours[field], want, "exact", f"{key} {field}")


@pytest.mark.parametrize("key", DIGESTS)
def test_matches_golden_digest(key, tmp_path_factory):
    """Official configs (FixRes 224, NaFlex 256): sha256 of every output equals transformers' (exact equality)."""
    case, config, backend = key.split("|")
    ours = run_case(case, config, backend, tmp_path_factory)
    for field, want in META["digests"][key].items():
        assert list(ours[field].shape) == want["shape"] and str(ours[field].dtype) == want["dtype"], f"{key} {field}"
        assert digest(ours[field]) == want["sha256"], f"{key} {field}: differs from transformers ({backend} back-end)"


def test_every_golden_case_is_covered():
    cases = {k.split("|")[0] for k in META["digests"]} | {k.split("|")[0] for k in ARRAYS}
    assert cases == {c.name for c in CASES}
    assert not META["not_bit_exact"]  # every golden is compared exactly


# ---- float arrays through the torchvision back-end (ATen's float resize; float_arrays.json) ------------------


def float_processor_output(key):
    """siglip2_ref's torchvision-back-end output for a float golden `case|config` (do_rescale by value range)."""
    case_name, config_name = key.split("|")
    case = FLOAT_CASES_BY_NAME[case_name]
    cfg = dict(FLOAT_META["configs"][config_name], do_rescale=case.value_range == "255")
    cfg = {k: v for k, v in cfg.items() if k not in ("image_processor_type", "processor_class")}
    variant = "naflex" if config_name.startswith("naflex") else "fixres"
    return ImageProcessor(variant, "torchvision", **cfg)(draw_float(case))


@pytest.mark.parametrize("key", sorted(FLOAT_ARRAYS))
def test_float_array_matches_stored_golden(key):
    """float16/32/64, HWC and CHW, [0, 1] (do_rescale=False) and [0, 255]: equal to transformers bit for bit."""
    ours = float_processor_output(key)
    assert set(ours) == set(FLOAT_ARRAYS[key])
    for field, want in FLOAT_ARRAYS[key].items():
        assert ours[field].dtype == want.dtype and ours[field].shape == want.shape, f"{key} {field}"
        assert np.array_equal(ours[field], want), f"{key} {field}: max diff {np.abs(ours[field] - want).max()}"


@pytest.mark.parametrize("key", sorted(k for k in FLOAT_META["digests"] if k not in FLOAT_ARRAYS))
def test_float_array_matches_golden_digest(key):
    """Official sizes (FixRes 224, NaFlex 256) on float arrays: sha256 of every output equals transformers'."""
    ours = float_processor_output(key)
    for field, want in FLOAT_META["digests"][key].items():
        assert list(ours[field].shape) == want["shape"] and str(ours[field].dtype) == want["dtype"], f"{key} {field}"
        assert digest(ours[field]) == want["sha256"], f"{key} {field}: differs from transformers"


def test_float_goldens_cover_every_case_and_resize_direction():
    assert {k.split("|")[0] for k in FLOAT_META["digests"]} == {c.name for c in FLOAT_CASES}
    assert {c.dtype for c in FLOAT_CASES} == {"float16", "float32", "float64"}
    assert {c.layout for c in FLOAT_CASES} == {"hwc", "chw"} and {c.value_range for c in FLOAT_CASES} == {"01", "255"}
    sizes = [(c.height, c.width) for c in FLOAT_CASES]
    assert any(h < 24 for h, w in sizes) and any(h > 32 and w > 40 for h, w in sizes)  # up- and downsampling


# ---- NaFlex geometry (expected values: transformers 5.24 `get_image_size_for_max_num_patches`, recorded) ----------------------------


@pytest.mark.parametrize(
    "hw, budget, expected",
    [((480, 640), 256, (224, 288)), ((1000, 300), 256, (448, 144)), ((37, 50), 256, (224, 288)),
     ((224, 224), 256, (256, 256)), ((1080, 1920), 256, (192, 336)), ((1, 1), 256, (112, 112)),
     ((5000, 16), 256, (4096, 16)), ((224, 224), 1024, (512, 512)), ((480, 640), 1024, (432, 576))],
)
def test_naflex_target_size_examples(hw, budget, expected):
    assert get_image_size_for_max_num_patches(*hw, 16, budget) == expected


def test_patchify_order_is_py_px_c():
    image = np.arange(3 * 4 * 6).reshape(3, 4, 6)  # [C, H, W], p = 2
    patches = patchify(image, 2)
    assert patches.shape == (6, 12)
    first = [image[c, py, px] for py in range(2) for px in range(2) for c in range(3)]
    assert patches[0].tolist() == first
    assert patches[1].tolist() == [image[c, py, 2 + px] for py in range(2) for px in range(2) for c in range(3)]
    assert np.array_equal(unpatchify(patches, (2, 3), 2), image)


def test_naflex_padding_and_mask():
    out = NaFlexImageProcessor(max_num_patches=40)(np.zeros((16, 48, 3), np.uint8))
    n = int(np.prod(out["spatial_shapes"][0]))
    assert out["pixel_values"].shape == (1, 40, 768) and out["pixel_attention_mask"].dtype == np.int32
    assert out["pixel_attention_mask"][0].tolist() == [1] * n + [0] * (40 - n)
    assert not out["pixel_values"][0, n:].any()


# ---- input conversion --------------------------------------------------------------------------------------------


def test_exif_orientation_is_applied_for_paths(tmp_path):
    path = draw(CASES_BY_NAME["exif_png_rot90_120x200"], str(tmp_path))
    out = FixResImageProcessor(size={"height": 200, "width": 120}, do_resize=False)(path)
    plain = np.asarray(Image.open(path).convert("RGB").transpose(Image.Transpose.ROTATE_270))
    assert out["pixel_values"].shape == (1, 3, 200, 120)
    expected = FixResImageProcessor(do_resize=False)(plain)["pixel_values"]
    assert np.array_equal(out["pixel_values"], expected)


def test_pil_image_is_not_exif_rotated(tmp_path):
    path = draw(CASES_BY_NAME["exif_png_rot90_120x200"], str(tmp_path))
    out = FixResImageProcessor(do_resize=False)(Image.open(path))
    assert out["pixel_values"].shape == (1, 3, 120, 200)


def test_rgba_is_composited_on_white():
    rgba = Image.new("RGBA", (2, 1), (255, 95, 252, 37))  # transformers 5.x composites on white: (255, 232, 255)
    out = FixResImageProcessor(do_resize=False, do_normalize=False, do_rescale=False)(rgba)
    assert out["pixel_values"][0, :, 0, 0].tolist() == [255, 232, 255]


def test_sixteen_bit_is_scaled_not_clipped():
    image = Image.fromarray(np.array([[0, 128, 129, 32896, 65535]], np.uint16))
    out = FixResImageProcessor(do_resize=False, do_normalize=False, do_rescale=False)(image)
    assert out["pixel_values"][0, 0, 0].tolist() == [0, 0, 1, 128, 255]  # round(v / 257)


def test_array_layouts_agree():
    hwc = draw(CASES_BY_NAME["array_hwc_u8_240x320"])
    proc = NaFlexImageProcessor(max_num_patches=16)
    a, b = proc(hwc), proc(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
    c = proc(Image.fromarray(hwc))
    assert np.array_equal(a["pixel_values"], b["pixel_values"]) and np.array_equal(a["pixel_values"], c["pixel_values"])


def test_mixed_list_of_inputs(tmp_path):
    items = [draw(CASES_BY_NAME[n], str(tmp_path)) for n in ("rgb_37x50", "array_hw_gray_200x150", "exif_png_rot90_120x200")]
    out = NaFlexImageProcessor(max_num_patches=16)(items)
    singles = [NaFlexImageProcessor(max_num_patches=16)(x)["pixel_values"][0] for x in items]
    assert out["pixel_values"].shape == (3, 16, 768)
    assert all(np.array_equal(out["pixel_values"][i], singles[i]) for i in range(3))


def test_load_image_processor_reads_variant_and_config(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        '{"image_processor_type": "SiglipImageProcessor", "resample": 3, "size": {"height": 32, "width": 48},'
        ' "do_convert_rgb": null}'
    )
    proc = load_image_processor(tmp_path)
    assert proc.variant == "fixres" and proc.config["resample"] == 3
    assert proc(np.zeros((5, 5, 3), np.uint8))["pixel_values"].shape == (1, 3, 32, 48)


# ---- bad inputs: one specific error each ----------------------------------------------------------------------


def png_with_header(path, width, height):
    """A tiny PNG file whose header claims width x height (a decompression bomb when large)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_zero_size_images_are_rejected():
    proc = NaFlexImageProcessor()
    with pytest.raises(ImageInputError, match="zero size"):
        proc(Image.new("RGB", (0, 5)))
    with pytest.raises(ImageInputError, match="zero size"):
        proc(np.zeros((0, 7, 3), np.uint8))


def test_truncated_and_non_image_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(draw(CASES_BY_NAME["array_hwc_u8_240x320"])).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    proc = FixResImageProcessor()
    for path in (truncated, text, tmp_path / "missing.png"):
        with pytest.raises(ImageFileError, match=os.path.basename(path)):
            proc(str(path))


def test_decompression_bomb_is_rejected(tmp_path):
    bomb = png_with_header(tmp_path / "bomb.png", 20000, 20000)  # 400 M pixels claimed, a few bytes stored
    with pytest.raises(ImageTooLargeError):
        FixResImageProcessor()(str(bomb))
    warn_size = png_with_header(tmp_path / "big.png", 10000, 10000)  # above the warning limit only
    with pytest.raises(ImageTooLargeError):
        FixResImageProcessor()(str(warn_size))


def test_unsupported_mode_and_layouts():
    proc = FixResImageProcessor()
    with pytest.raises(ImageInputError, match="La"):
        proc(Image.new("La", (4, 4)))
    with pytest.raises(ImageInputError, match="channel"):
        proc(np.zeros((5, 6, 2), np.uint8))
    with pytest.raises(ImageInputError, match="shape"):
        proc(np.zeros((1, 2, 5, 6, 3), np.uint8))
    with pytest.raises(ImageInputError, match="dtype"):
        proc(np.zeros((5, 6, 3), bool))


def test_nan_and_out_of_range_values():
    proc = FixResImageProcessor()
    bad = np.full((8, 8, 3), 0.5, np.float32)
    bad[3, 4, 1] = np.nan
    with pytest.raises(ImageInputError, match="NaN"):
        proc(bad)
    with pytest.raises(ImageInputError, match="NaN"):
        proc(Image.fromarray(bad[..., 1]))
    with pytest.raises(ImageInputError, match=r"\[0, 1\]"):
        proc(np.full((8, 8, 3), 1.5, np.float32))
    with pytest.raises(ImageInputError, match=r"\[0, 255\]"):
        proc(np.full((8, 8, 3), 300, np.int32))


def test_bad_max_num_patches_and_types():
    proc = NaFlexImageProcessor()
    with pytest.raises(ValueError, match="max_num_patches"):
        proc(np.zeros((8, 8, 3), np.uint8), max_num_patches=0)
    with pytest.raises(TypeError, match="max_num_patches"):
        proc(np.zeros((8, 8, 3), np.uint8), max_num_patches=2.5)
    with pytest.raises(TypeError, match="unsupported image type"):
        proc({"not": "an image"})
    with pytest.raises(TypeError, match="None"):
        proc(None)
    with pytest.raises(ImageInputError, match="empty list"):
        proc([])
    with pytest.raises(TypeError, match="unexpected image processor option"):
        proc(np.zeros((8, 8, 3), np.uint8), max_patches=3)
    with pytest.raises(ValueError, match="resample"):
        NaFlexImageProcessor(resample=1)
    with pytest.raises(ValueError, match="return_tensors"):
        proc(np.zeros((8, 8, 3), np.uint8), return_tensors="pt")


@pytest.mark.parametrize("make", [FixResImageProcessor, NaFlexImageProcessor], ids=["fixres", "naflex"])
def test_pixels_stay_uint8_when_neither_rescaled_nor_normalised(make):
    """transformers' Pillow processors return uint8 pixel_values then (tests/oracle/test_live_preprocess.py checks it live)."""
    image = Image.new("RGB", (40, 32), (200, 10, 30))
    out = make(do_rescale=False, do_normalize=False)(image)
    assert out["pixel_values"].dtype == np.uint8 and out["pixel_values"].max() == 200
