"""An RGB PIL image's pixels as a NumPy view, without the copy `np.asarray` makes.

`np.asarray(image)` goes through `image.tobytes()`: Pillow's raw encoder copies the pixels into bytes objects, and
joining them copies again (1.3 to 1.9 ms for a 1024x768 photo, as long as resizing it). Pillow 11.2 and later also
export an image through the Arrow C data interface (`__arrow_c_array__`), a stable ABI: a fixed-size list of 4
bytes per pixel (R, G, B and a padding byte, Pillow's own layout) whose child array points at Pillow's memory. That
works when the image lies in one block of memory (Pillow keeps large images in several, up to 16 MiB each), so
`rgb_pixels` checks everything it reads and takes `np.asarray` whenever any of it is not as expected.

The view is read-only and keeps the export alive: Pillow's memory stays valid until the array is gone, even when
the image is closed or deleted first. An image Pillow keeps in several blocks (over 16 MiB: a 12-megapixel photo)
can still be read a strip of rows at a time (`rgb_rows`): cropping a strip copies it in C, and the strip fits one
block, which is faster than the whole copy through `tobytes` (27 against 44 ms for a 4000x3000 photo).
"""

import ctypes

import numpy as np


class ArrowSchema(ctypes.Structure):  # Arrow C data interface, struct ArrowSchema
    pass


ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p), ("name", ctypes.c_char_p), ("metadata", ctypes.c_char_p), ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64), ("children", ctypes.POINTER(ctypes.POINTER(ArrowSchema))),
    ("dictionary", ctypes.POINTER(ArrowSchema)), ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]  # fmt: skip


class ArrowArray(ctypes.Structure):  # Arrow C data interface, struct ArrowArray
    pass


ArrowArray._fields_ = [
    ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64), ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))), ("dictionary", ctypes.POINTER(ArrowArray)),
    ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]  # fmt: skip

try:  # CPython's C API; an interpreter without it takes np.asarray
    _capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    _capsule_pointer.restype, _capsule_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
except AttributeError:
    _capsule_pointer = None


class ExportedPixels:
    """Holds the two capsules (whose destructors release Pillow's memory) and describes the child buffer to NumPy;
    the array made from it keeps it, and so the export, alive."""

    def __init__(self, capsules, address, shape):
        self.capsules = capsules
        self.__array_interface__ = {"version": 3, "shape": shape, "typestr": "|u1", "data": (address, True)}


def exports(image):  # -> whether this Pillow and interpreter can export `image` (an RGB image in one block)
    return _capsule_pointer is not None and hasattr(image, "__arrow_c_array__") and image.mode == "RGB"


def exported_rgbx(image):  # PIL.Image RGB -> [h0, w0, 4] uint8 view, or None when the export is not as expected
    h, w = image.height, image.width
    if _capsule_pointer is None:
        return None
    try:
        capsules = image.__arrow_c_array__()
        schema = ArrowSchema.from_address(_capsule_pointer(capsules[0], b"arrow_schema"))
        array = ArrowArray.from_address(_capsule_pointer(capsules[1], b"arrow_array"))
    except (AttributeError, ValueError, TypeError, IndexError, OSError):  # older Pillow; rows in several blocks
        return None
    if schema.format != b"+w:4" or schema.n_children != 1 or schema.children[0].contents.format != b"C":
        return None
    if array.length != h * w or array.offset != 0 or array.n_children != 1 or array.buffers[0]:  # no validity bitmap
        return None
    child = array.children[0].contents
    if child.length != 4 * h * w or child.offset != 0 or child.n_buffers != 2 or child.buffers[0] or not child.buffers[1]:
        return None
    return np.asarray(ExportedPixels(capsules, child.buffers[1], (h, w, 4)))


def whole_view(image):  # PIL.Image -> [h0, w0, 3] uint8 view of Pillow's memory, or None
    rgbx = exported_rgbx(image) if exports(image) and image.width * image.height > 0 else None
    return None if rgbx is None else rgbx[..., :3]


def rgb_pixels(image):  # PIL.Image RGB -> [h0, w0, 3] uint8 (read-only; a view of Pillow's memory when it can be)
    """What `np.asarray(image)` returns, without its copy where Pillow exports the image (see the module's text)."""
    view = whole_view(image)
    return np.asarray(image) if view is None else view


class RowStrips:
    """An RGB PIL image as rows [h0, w0, 3]: `strips[rows]` (a slice) crops those rows and views the crop."""

    def __init__(self, image):
        image.load()  # before threads crop it at once
        self.image, self.shape = image, (image.height, image.width, 3)

    def __getitem__(self, rows):  # slice -> [r, w0, 3] uint8
        return rgb_pixels(self.image.crop((0, rows.start, self.image.width, rows.stop)))


def rgb_rows(image):  # PIL.Image RGB -> [h0, w0, 3] uint8 or RowStrips: indexable by a slice of rows
    """The pixels by rows without copying the whole image: one view where Pillow exports the image, strips where
    it keeps the image in several blocks, np.asarray's copy where it exports nothing."""
    view = whole_view(image)
    if view is not None:
        return view
    return RowStrips(image) if exports(image) else np.asarray(image)
