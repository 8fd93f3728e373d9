"""The safetensors header rules: each bad header gets a CheckpointError naming the file, the key and what was expected,
and our loader refuses a file exactly when the safetensors library's `safe_open` refuses it."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file

from siglip2_ref.checkpoint.weights import MAX_HEADER_BYTES, CheckpointError, read_tensors, weight_files

TENSORS = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([-1, 7], np.int16),
           "m": np.array([[1, 2]], np.uint8)}  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A valid file written by the safetensors library: (header dict, data bytes, whole file bytes)."""
    path = tmp_path_factory.mktemp("base") / "model.safetensors"
    save_file(TENSORS, str(path), metadata={"format": "np"})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]), raw[8 + n :], raw


def file_bytes(header, data, n=None):
    """8-byte length + header (a dict, dumped compactly, or raw bytes) + data; `n` overrides the stored length."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(raw) if n is None else n).to_bytes(8, "little") + raw + data


def folder_with(tmp_path, content):
    """A checkpoint folder holding `content` as its model.safetensors."""
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors").write_bytes(content)
    return folder


def library_refuses(path):
    """Whether safetensors' own reader refuses the file (opening it and listing keys)."""
    try:
        with safe_open(str(path), "numpy") as f:
            list(f.keys())
    except Exception:  # noqa: BLE001 - SafetensorError and friends; any refusal counts
        return True
    return False


def edit(h, key, **fields):
    """A copy of header `h` with `fields` replaced in entry `key` (None removes the field)."""
    h = json.loads(json.dumps(h))
    h[key].update(fields)
    h[key] = {k: v for k, v in h[key].items() if v is not None}
    return h


def shifted(h, d, delta):
    """Header and data with every tensor moved `delta` bytes later and `delta` padding bytes in front."""
    h = json.loads(json.dumps(h))
    for k, e in h.items():
        if k != "__metadata__":
            e["data_offsets"] = [o + delta for o in e["data_offsets"]]
    return h, b"\0" * delta + d


def w_at(h, offsets):
    """Header with w's data_offsets replaced."""
    return edit(h, "w", data_offsets=offsets)


def deep(h):
    """Header text with a 100000-deep nested list inside the metadata."""
    return json.dumps(h).encode()[:-1] + b', "x": ' + b"[" * 100000 + b"]" * 100000 + b"}"


# (id, build(header, data, whole) -> file bytes, expected message pattern, stricter than the library)
BAD = [
    ("short-file", lambda h, d, r: b"\x10\x00", "truncated safetensors file", False),
    ("length-past-end", lambda h, d, r: r[:8] + r[8:20], r"header length \d+ exceeds the file", False),
    ("length-over-limit", lambda h, d, r: file_bytes(h, d, n=MAX_HEADER_BYTES + 1), "exceeds the limit", False),
    ("length-too-short", lambda h, d, r: file_bytes(h, d, n=len(json.dumps(h)) - 1), "not valid JSON", False),
    ("not-utf8", lambda h, d, r: file_bytes(json.dumps(h).encode().replace(b'"w"', b'"\xff"'), d), "not valid UTF-8", False),
    ("not-json", lambda h, d, r: file_bytes(b"{not json at all", d), "not valid JSON", False),
    ("json-array", lambda h, d, r: file_bytes(b"[]", d), r"not a JSON object \(got list\)", False),
    ("trailing-garbage", lambda h, d, r: file_bytes(json.dumps(h).encode() + b"\0", d), "header is not valid JSON.*Extra data", False),
    ("nan", lambda h, d, r: file_bytes(json.dumps(h).encode()[:-1] + b', "z": NaN}', d), "NaN is not a JSON value", False),
    ("lone-surrogate", lambda h, d, r: file_bytes(json.dumps(h).encode().replace(b'"w"', b'"\\ud800"'), d), "surrogate", False),
    ("deep-nesting", lambda h, d, r: file_bytes(deep(h), d), "nested too deeply", False),
    ("duplicate-key", lambda h, d, r: file_bytes(json.dumps(h).encode()[:-1] + b', "w": ' + json.dumps(h["w"]).encode() + b"}", d),
     "'w' appears twice", True),
    ("entry-not-object", lambda h, d, r: file_bytes({**h, "w": [1, 2]}, d), r"tensor 'w' is \[1, 2\], expected an object", False),
    ("entry-null", lambda h, d, r: file_bytes({**h, "w": None}, d), "tensor 'w' is None, expected an object", False),
    ("missing-dtype", lambda h, d, r: file_bytes(edit(h, "w", dtype=None), d), "tensor 'w' is missing dtype", False),
    ("missing-shape", lambda h, d, r: file_bytes(edit(h, "b", shape=None), d), "tensor 'b' is missing shape", False),
    ("missing-offsets", lambda h, d, r: file_bytes(edit(h, "m", data_offsets=None), d), "tensor 'm' is missing data_offsets", False),
    ("unknown-dtype", lambda h, d, r: file_bytes(edit(h, "w", dtype="F33"), d), "tensor 'w' has unknown dtype 'F33', expected one of", False),
    ("lowercase-dtype", lambda h, d, r: file_bytes(edit(h, "w", dtype="f32"), d), "tensor 'w' has unknown dtype 'f32'", False),
    ("dtype-not-string", lambda h, d, r: file_bytes(edit(h, "w", dtype=32), d), "tensor 'w' has unknown dtype 32", False),
    ("sub-byte-dtype", lambda h, d, r: file_bytes(edit(h, "m", dtype="F4", shape=[4]), d), "tensor 'm' has dtype 'F4' .*cannot read", True),
    ("negative-dim", lambda h, d, r: file_bytes(edit(h, "w", shape=[-2, -3]), d), "tensor 'w' has an invalid shape", False),
    ("float-dim", lambda h, d, r: file_bytes(edit(h, "w", shape=[2.0, 3]), d), r"tensor 'w' has an invalid shape \[2.0, 3\]", False),
    ("bool-dim", lambda h, d, r: file_bytes(edit(h, "b", shape=[True, 2]), d), "tensor 'b' has an invalid shape", False),
    ("dim-over-u64", lambda h, d, r: file_bytes(edit(h, "w", shape=[2**64, 3]), d), "tensor 'w' has an invalid shape", False),
    ("shape-not-list", lambda h, d, r: file_bytes(edit(h, "w", shape="2x3"), d), "tensor 'w' has an invalid shape '2x3'", False),
    ("three-offsets", lambda h, d, r: file_bytes(w_at(h, h["w"]["data_offsets"] + [0]), d), "tensor 'w' has invalid data_offsets", False),
    ("offsets-not-ints", lambda h, d, r: file_bytes(w_at(h, ["0", "24"]), d), "tensor 'w' has invalid data_offsets", False),
    ("end-before-begin", lambda h, d, r: file_bytes(w_at(h, h["w"]["data_offsets"][::-1]), d), "tensor 'w' .*end before begin", False),
    ("shape-size-mismatch", lambda h, d, r: file_bytes(edit(h, "w", shape=[3, 3]), d), r"tensor 'w' occupies 24 bytes .*expected 36 bytes", False),
    ("dtype-size-mismatch", lambda h, d, r: file_bytes(edit(h, "w", dtype="F64"), d), r"tensor 'w' occupies 24 bytes .*expected 48 bytes", False),
    ("not-starting-at-0", lambda h, d, r: file_bytes(*shifted(h, d, 8)), "starts at byte 8, leaving a gap after byte 0", False),
    ("overlap", lambda h, d, r: file_bytes({**h, "w2": h["w"]}, d), "overlapping tensor", False),
    ("empty-inside-another", lambda h, d, r: file_bytes({**h, "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}, d),
     "'z' starts at byte 4, overlapping", False),
    ("gap", lambda h, d, r: file_bytes(edit(h, "m", shape=[1, 1], data_offsets=[h["m"]["data_offsets"][0] + 1, h["m"]["data_offsets"][1]]), d),
     "tensor 'm' .*leaving a gap", False),
    ("trailing-data", lambda h, d, r: r + b"\0" * 4, r"tensors cover \d+ of the \d+ data bytes", False),
    ("truncated-data", lambda h, d, r: r[:-2], r"ends at byte \d+ but the file holds \d+ data bytes: truncated", False),
    ("empty-header-with-data", lambda h, d, r: file_bytes({}, d), r"tensors cover 0 of the \d+ data bytes", False),
    ("metadata-int-value", lambda h, d, r: file_bytes({**h, "__metadata__": {"format": 1}}, d), "'__metadata__' entry 'format' is 1, expected a string", False),
    ("metadata-list", lambda h, d, r: file_bytes({**h, "__metadata__": ["np"]}, d), "'__metadata__' is a list, expected an object", False),
]

# Files the format allows (and the library opens): they must load.
GOOD = [
    ("as-written", lambda h, d, r: r),
    ("no-metadata", lambda h, d, r: file_bytes({k: v for k, v in h.items() if k != "__metadata__"}, d)),
    ("null-metadata", lambda h, d, r: file_bytes({**h, "__metadata__": None}, d)),
    ("extra-field-ignored", lambda h, d, r: file_bytes(edit(h, "w", note="extra fields are ignored, as in safetensors"), d)),
    ("surrounding-whitespace", lambda h, d, r: file_bytes(b"  " + json.dumps(h).encode() + b"    ", d)),
    ("empty-tensor-at-a-boundary", lambda h, d, r: file_bytes({**h, "z": {"dtype": "F32", "shape": [2, 0], "data_offsets": [0, 0]}}, d)),
    ("unsigned-dtype", lambda h, d, r: file_bytes(edit(h, "b", dtype="U16"), d)),
    ("no-tensors", lambda h, d, r: file_bytes({}, b"")),
]


@pytest.mark.parametrize("build, pattern", [pytest.param(b, p, id=i) for i, b, p, _ in BAD])
def test_bad_header_is_refused_with_a_specific_message(tmp_path, base, build, pattern):
    folder = folder_with(tmp_path, build(*base))
    with pytest.raises(CheckpointError, match=pattern) as info:
        read_tensors(folder)
    assert "model.safetensors" in str(info.value)


@pytest.mark.parametrize("build", [pytest.param(b, id=i) for i, b in GOOD])
def test_allowed_header_loads(tmp_path, base, build):
    tensors = read_tensors(folder_with(tmp_path, build(*base)))
    for key, (array, _) in tensors.items():
        if key in TENSORS and array.dtype == TENSORS[key].dtype:
            np.testing.assert_array_equal(array, TENSORS[key], err_msg=key)


@pytest.mark.parametrize("build, stricter", [pytest.param(b, s, id=i) for i, b, _, s in BAD] + [pytest.param(b, False, id=i) for i, b in GOOD])
def test_library_agrees_on_every_case(tmp_path, base, build, stricter):
    folder = folder_with(tmp_path, build(*base))
    try:
        read_tensors(folder)
        ours = False
    except CheckpointError:
        ours = True
    assert library_refuses(folder / "model.safetensors") == (ours and not stricter)


def loaded_or_refused(folder):
    """read_tensors' result as {key: (dtype, bytes, shape)}, or None when it raises CheckpointError."""
    try:
        return {k: (t, a.tobytes(), a.shape) for k, (a, t) in read_tensors(folder).items()}
    except CheckpointError as e:
        return None if "appears twice" not in str(e) else "stricter"


def library_view(path):
    """What safe_open reads from the file, like loaded_or_refused; None when it refuses."""
    try:
        with safe_open(str(path), "numpy") as f:
            return {k: (f.get_slice(k).get_dtype(), f.get_tensor(k).tobytes(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}
    except Exception:  # noqa: BLE001
        return None


def test_every_single_byte_change_in_the_header_agrees_with_the_library(tmp_path, base):
    _, _, raw = base
    n = 8 + int.from_bytes(raw[:8], "little")
    for i in range(n):
        for value in (0x00, 0x22, 0x30, 0x39, 0x5B, 0x77, 0xC3, raw[i] ^ 0x01):
            changed = raw[:i] + bytes([value]) + raw[i + 1 :]
            folder = folder_with(tmp_path, changed)
            ours = loaded_or_refused(folder)
            if ours != "stricter":
                assert ours == library_view(folder / "model.safetensors"), (i, value, changed[:n])


mutations = st.one_of(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4).map(lambda m: ("bytes", m)),
    st.integers(-64, 64).filter(bool).map(lambda d: ("length", d)),
)


@given(mutation=mutations)
def test_mutated_header_loads_the_same_arrays_or_is_refused(tmp_path_factory, base, mutation):
    _, _, raw = base
    n = int.from_bytes(raw[:8], "little")
    changed = bytearray(raw)
    kind, what = mutation
    if kind == "length":
        changed[:8] = max(n + what, 0).to_bytes(8, "little")
    else:
        for position, value in what:
            changed[position % (8 + n)] = value
    folder = folder_with(tmp_path_factory.mktemp("m"), bytes(changed))
    ours = loaded_or_refused(folder)  # any exception other than CheckpointError fails the test
    if ours is None or ours == "stricter":
        return
    assert ours == library_view(folder / "model.safetensors")
    same_header = ours.keys() == TENSORS.keys() and all(ours[k][2] == TENSORS[k].shape for k in ours)
    if same_header and all(ours[k][0] == {"w": "F32", "b": "I16", "m": "U8"}[k] for k in ours):
        assert all(ours[k][1] == TENSORS[k].tobytes() for k in ours)


# ---------------------------------------------------------------- sharded index


def sharded(tmp_path, weight_map=None, shards=None):
    """A folder with shards s1 = {w, b} and s2 = {m} and an index (default: the true weight map)."""
    folder = tmp_path / "sharded"
    folder.mkdir()
    shards = shards or {"s1.safetensors": ["w", "b"], "s2.safetensors": ["m"]}
    for name, keys in shards.items():
        save_file({k: TENSORS[k] for k in keys}, str(folder / name))
    true_map = {k: name for name, keys in shards.items() for k in keys}
    index = {"metadata": {"total_size": 34}, "weight_map": true_map if weight_map is None else weight_map}
    (folder / "model.safetensors.index.json").write_text(index if isinstance(index["weight_map"], str) else json.dumps(index))
    return folder


def write_index(folder, text):
    """Replace the folder's index file with `text`."""
    (folder / "model.safetensors.index.json").write_text(text)
    return folder


TRUE_MAP = {"w": "s1.safetensors", "b": "s1.safetensors", "m": "s2.safetensors"}
BAD_INDEX = [
    ("not-json", lambda f: write_index(f, "{weight_map"), "index file is not valid JSON"),
    ("not-an-object", lambda f: write_index(f, "[]"), "needs a 'weight_map' object"),
    ("no-weight-map", lambda f: write_index(f, '{"metadata": {}}'), "needs a 'weight_map' object"),
    ("weight-map-list", lambda f: write_index(f, '{"weight_map": ["s1.safetensors"]}'), "needs a 'weight_map' object"),
    ("empty-weight-map", lambda f: write_index(f, '{"weight_map": {}}'), "'weight_map' is empty"),
    ("shard-not-a-string", lambda f: write_index(f, json.dumps({"weight_map": {**TRUE_MAP, "m": 2}})), "maps tensor 'm' to 2, expected a shard file name"),
    ("duplicate-key", lambda f: write_index(f, '{"weight_map": {"w": "s1.safetensors", "w": "s2.safetensors"}}'), "'w' appears twice"),
    ("deep-nesting", lambda f: write_index(f, '{"x": ' + "[" * 100000 + "]" * 100000 + "}"), "nested too deeply"),
    ("subfolder", lambda f: write_index(f, json.dumps({"weight_map": {**TRUE_MAP, "m": "sub/s2.safetensors"}})),
     "shard path 'sub/s2.safetensors' points outside the checkpoint folder"),
    ("dot-dot", lambda f: write_index(f, json.dumps({"weight_map": {**TRUE_MAP, "m": ".."}})), "shard path '..' points outside"),
    ("backslash", lambda f: write_index(f, json.dumps({"weight_map": {**TRUE_MAP, "m": "..\\s2.safetensors"}})), "points outside"),
    ("not-safetensors", lambda f: write_index(f, json.dumps({"weight_map": {**TRUE_MAP, "m": "s2.bin"}})), "shard 's2.bin' is not a .safetensors file"),
    ("missing-shard", lambda f: write_index(f, json.dumps({"weight_map": {**TRUE_MAP, "m": "s3.safetensors"}})),
     "shard 's3.safetensors' is listed but missing"),
    ("unlisted-tensor", lambda f: write_index(f, json.dumps({"weight_map": {"w": "s1.safetensors", "m": "s2.safetensors"}})),
     "tensor 'b' is stored in shard 's1.safetensors' but missing from 'weight_map'"),
    ("listed-not-stored", lambda f: write_index(f, json.dumps({"weight_map": {**TRUE_MAP, "q": "s2.safetensors"}})),
     "tensor 'q' is listed in shard 's2.safetensors' but no shard stores it"),
    ("wrong-shard", lambda f: write_index(f, json.dumps({"weight_map": {**TRUE_MAP, "b": "s2.safetensors"}})),
     "tensor 'b' is listed in shard 's2.safetensors' but stored in 's1.safetensors'"),
]


@pytest.mark.parametrize("spoil, pattern", [pytest.param(s, p, id=i) for i, s, p in BAD_INDEX])
def test_bad_index_is_refused_with_a_specific_message(tmp_path, spoil, pattern):
    folder = spoil(sharded(tmp_path))
    with pytest.raises(CheckpointError, match=pattern) as info:
        read_tensors(folder)
    assert "model.safetensors.index.json" in str(info.value)


def test_tensor_in_two_shards_is_refused(tmp_path):
    folder = sharded(tmp_path, shards={"s1.safetensors": ["w", "b"], "s2.safetensors": ["m", "b"]})
    with pytest.raises(CheckpointError, match="s2.safetensors: tensor 'b' is also stored in shard 's1.safetensors'"):
        read_tensors(folder)


def test_good_index_loads_and_shards_may_be_symlinks(tmp_path):
    folder = sharded(tmp_path)
    (tmp_path / "blobs").mkdir()
    (folder / "s2.safetensors").rename(tmp_path / "blobs" / "s2")
    (folder / "s2.safetensors").symlink_to(tmp_path / "blobs" / "s2")  # the Hugging Face cache layout
    assert weight_files(folder) == [folder / "s1.safetensors", folder / "s2.safetensors"]
    tensors = read_tensors(folder)
    assert tensors.keys() == TENSORS.keys()
    assert all(np.array_equal(tensors[k][0], TENSORS[k]) for k in TENSORS)
