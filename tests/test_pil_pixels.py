"""pil_pixels.rgb_pixels: the same array as np.asarray(image), a view where Pillow exports one, a copy otherwise."""

import gc

import numpy as np
import PIL
import pytest
from PIL import Image

from siglip2_ref.preprocess import pil_pixels
from siglip2_ref.preprocess.pil_pixels import exported_rgbx, rgb_pixels

EXPORTS = hasattr(Image.Image, "__arrow_c_array__")  # Pillow 11.2 and later


def random_rgb(h, w, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1), (3, 5), (37, 53), (768, 1024), (2, 4097)])
def test_same_pixels_as_asarray(size):
    image = random_rgb(*size)
    got = rgb_pixels(image)
    assert got.shape == (*size, 3) and got.dtype == np.uint8
    assert np.array_equal(got, np.asarray(image))
    assert not got.flags.writeable


@pytest.mark.skipif(not EXPORTS, reason=f"Pillow {PIL.__version__} has no Arrow export")
def test_a_small_image_is_a_view_of_pillows_memory_that_outlives_the_image():
    image = random_rgb(300, 200)
    want = np.asarray(image).copy()
    got = rgb_pixels(image)
    assert got.base is not None and got.strides == (200 * 4, 4, 1)  # Pillow's 4 bytes a pixel, not a packed copy
    image.close()
    del image
    gc.collect()
    for _ in range(20):  # reuse freed memory: a dangling view would now read other data
        random_rgb(300, 200, seed=1).load()
    assert np.array_equal(got, want)


@pytest.mark.skipif(not EXPORTS, reason=f"Pillow {PIL.__version__} has no Arrow export")
def test_an_image_in_several_memory_blocks_falls_back_to_a_copy():
    image = Image.new("RGB", (4000, 3000), (10, 20, 30))  # 48 MB: more than one of Pillow's blocks
    assert exported_rgbx(image) is None
    got = rgb_pixels(image)
    assert got.shape == (3000, 4000, 3) and (got == [10, 20, 30]).all()


def test_an_unexpected_export_is_not_trusted(monkeypatch):
    """Another layout (a grey image's export: one byte a pixel), no export, or no C API to read it: np.asarray's copy."""
    grey = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert exported_rgbx(grey) is None
    image = random_rgb(20, 30)
    monkeypatch.delattr(Image.Image, "__arrow_c_array__", raising=False)
    assert exported_rgbx(image) is None
    assert np.array_equal(rgb_pixels(image), np.asarray(image))
    monkeypatch.setattr(Image.Image, "__arrow_c_array__", lambda self, requested_schema=None: (1, 2), raising=False)
    assert exported_rgbx(image) is None  # not capsules at all
    monkeypatch.undo()
    monkeypatch.setattr(pil_pixels, "_capsule_pointer", None)  # an interpreter without CPython's C API
    assert exported_rgbx(image) is None and np.array_equal(rgb_pixels(image), np.asarray(image))


@pytest.fixture
def small_pillow_blocks():
    """Pillow's blocks made 64 KiB, so that small test images lie in several (as a 12-megapixel photo does)."""
    size = Image.core.get_block_size()
    Image.core.set_block_size(1 << 16)
    try:
        yield
    finally:
        Image.core.set_block_size(size)


@pytest.mark.skipif(not EXPORTS, reason=f"Pillow {PIL.__version__} has no Arrow export")
def test_an_image_in_several_blocks_is_read_in_strips(small_pillow_blocks):
    from siglip2_ref.preprocess.pil_pixels import RowStrips, rgb_rows

    image = random_rgb(300, 200)
    assert exported_rgbx(image) is None
    rows = rgb_rows(image)
    assert isinstance(rows, RowStrips) and rows.shape == (300, 200, 3)
    want = np.asarray(image)
    for r in (slice(0, 300), slice(0, 1), slice(17, 140), slice(299, 300)):
        assert np.array_equal(rows[r], want[r])


@pytest.mark.skipif(not EXPORTS, reason=f"Pillow {PIL.__version__} has no Arrow export")
@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
def test_the_torchvision_resize_of_an_image_in_several_blocks(small_pillow_blocks, resample, monkeypatch):
    """Every width-pass task reads its own strip (many small tasks, all workers): the reference's numbers."""
    from siglip2_ref.preprocess import fast
    from siglip2_ref.preprocess.resize import resize_torchvision

    monkeypatch.setattr(fast, "BLOCK_VALUES", 2000)
    monkeypatch.setattr(fast, "MIN_TASK_PIXELS", 0)
    image = random_rgb(301, 260, seed=4)
    chw = np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1))
    for size in [(50, 37), (301, 40), (120, 260)]:
        assert np.array_equal(fast.resize_torchvision_chw(image, size, resample), resize_torchvision(chw, size, resample))
