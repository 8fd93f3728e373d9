"""Bad config.json, preprocessor_config.json and class-naming keys: one clear error naming the file and the key.

Each case damages one value of a valid file (the golden tiny checkpoints' config.json, the demo models'
preprocessor_config.json) and asserts the error class and the key words of its message.
"""

import copy
import json
import math
import os
import shutil

import pytest

from siglip2_ref.checkpoint.choices import FolderChoiceError, decide
from siglip2_ref.checkpoint.config import ConfigError, load_config, parse_config
from siglip2_ref.cli import app as cli
from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, EXAMPLE_IMAGE
from siglip2_ref.preprocess.image_config import MAX_NUM_PATCHES, ImageConfigError, ImageConfigTypeError
from siglip2_ref.preprocess.images import NaFlexImageProcessor, load_image_processor

from .synthetic import GOLDEN_MODEL

CHECKPOINTS = os.path.join(GOLDEN_MODEL, "checkpoints")


def golden_config(name):
    with open(os.path.join(CHECKPOINTS, name, "config.json"), encoding="utf-8") as f:
        return json.load(f)


NAFLEX, FIXRES, FIXRES_CLS = golden_config("naflex"), golden_config("fixres"), golden_config("fixres_cls")


def changed(base, path, value):
    """A deep copy of `base` with the value at `path` (keys separated by dots) replaced; DELETE removes it."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


DELETE = object()

# (base config, dotted key, bad value, words the message must hold)
CONFIG_CASES = [
    (NAFLEX, "model_type", DELETE, ["model_type None", "expected one of"]),
    (NAFLEX, "model_type", ["siglip2"], ["model_type", "not a SigLIP"]),
    (NAFLEX, "model_type", "clip", ["'clip'", "expected one of"]),
    (NAFLEX, "vision_config", [1, 2], ["vision_config", "expected a JSON object", "list [1, 2]"]),
    (NAFLEX, "text_config", "big", ["text_config", "expected a JSON object", "string 'big'"]),
    (NAFLEX, "vision_config.hidden_size", "36", ["vision_config.hidden_size", "expected int", "got '36'"]),
    (NAFLEX, "vision_config.hidden_size", 36.0, ["vision_config.hidden_size", "expected int", "got 36.0"]),
    (NAFLEX, "vision_config.hidden_size", True, ["vision_config.hidden_size", "expected int", "got True"]),
    (NAFLEX, "vision_config.hidden_size", None, ["vision_config.hidden_size", "expected int", "got None"]),
    (NAFLEX, "vision_config.hidden_size", 0, ["vision_config.hidden_size must be >= 1"]),
    (NAFLEX, "vision_config.hidden_size", 35, ["vision_config.hidden_size (35)", "divisible", "num_attention_heads (3)"]),
    (NAFLEX, "vision_config.intermediate_size", math.inf, ["vision_config.intermediate_size", "expected int"]),
    (NAFLEX, "vision_config.num_attention_heads", -3, ["vision_config.num_attention_heads must be >= 1"]),
    (NAFLEX, "text_config.num_hidden_layers", -1, ["text_config.num_hidden_layers must be >= 0"]),
    (NAFLEX, "vision_config.layer_norm_eps", math.nan, ["vision_config.layer_norm_eps", "finite"]),
    (NAFLEX, "vision_config.layer_norm_eps", math.inf, ["vision_config.layer_norm_eps", "finite"]),
    (NAFLEX, "text_config.layer_norm_eps", 0.0, ["text_config.layer_norm_eps", "0 < eps < 1"]),
    (NAFLEX, "text_config.layer_norm_eps", -1e-6, ["text_config.layer_norm_eps", "0 < eps < 1"]),
    (NAFLEX, "text_config.layer_norm_eps", 2.0, ["text_config.layer_norm_eps", "small positive", "2.0"]),
    (NAFLEX, "text_config.layer_norm_eps", "1e-6", ["text_config.layer_norm_eps", "expected a number"]),
    (NAFLEX, "vision_config.hidden_act", "swish", ["hidden_act 'swish' is not supported", "gelu_pytorch_tanh"]),
    (NAFLEX, "vision_config.hidden_act", ["gelu"], ["vision_config.hidden_act", "expected str"]),
    (NAFLEX, "vision_config.patch_size", [4, 2], ["vision_config.patch_size", "square patches"]),
    (NAFLEX, "vision_config.patch_size", 0, ["patch_size and num_channels must be >= 1"]),
    (NAFLEX, "vision_config.num_channels", 0, ["patch_size and num_channels must be >= 1"]),
    (NAFLEX, "vision_config.num_patches", 15, ["vision_config.num_patches", "perfect square"]),
    (NAFLEX, "vision_config.num_patches", 0, ["vision_config.num_patches", "perfect square"]),
    (NAFLEX, "vision_config.vision_use_head", "yes", ["vision_config.vision_use_head", "expected bool"]),
    (NAFLEX, "text_config.vocab_size", 0, ["text_config.vocab_size must be >= 1"]),
    (NAFLEX, "text_config.max_position_embeddings", 0, ["text_config.max_position_embeddings must be >= 1"]),
    (NAFLEX, "text_config.projection_size", 0, ["text_config.projection_size must be >= 1"]),
    (NAFLEX, "text_config.projection_size", 12, ["projection_size (12) must equal vision_config.hidden_size (36)"]),
    (NAFLEX, "architectures", "Siglip2Model", ["architectures", "expected a list of class names", "string"]),
    (NAFLEX, "architectures", [7], ["architectures", "expected a list of class names", "[7]"]),
    (FIXRES, "vision_config.image_size", 2, ["vision_config.image_size (2) must be >= patch_size"]),
    (FIXRES, "vision_config.image_size", [32, 48], ["vision_config.image_size", "square"]),
    (FIXRES, "vision_config.image_size", "32", ["vision_config.image_size", "expected int"]),
    (FIXRES_CLS, "id2label", ["cat", "dog"], ["id2label", "expected a JSON object"]),
    (FIXRES_CLS, "id2label", {"a": "cat"}, ["id2label", "integer keys"]),
    (FIXRES_CLS, "id2label", {"0": 3}, ["id2label[0]", "label string", "integer 3"]),
    (FIXRES_CLS, "num_labels", -1, ["num_labels", "non-negative integer"]),
    (FIXRES_CLS, "num_labels", "3", ["num_labels", "non-negative integer", "string"]),
]


@pytest.mark.parametrize("base, key, value, words", CONFIG_CASES, ids=[f"{c[1]}={c[2]!r}"[:60] for c in CONFIG_CASES])
def test_bad_config_value(base, key, value, words):
    with pytest.raises(ConfigError) as info:
        parse_config(changed(base, key, value), "ckpt/config.json")
    message = str(info.value)
    assert message.startswith("ckpt/config.json: "), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("raw", [[], "siglip", 3, None])
def test_config_not_an_object(raw):
    with pytest.raises(ConfigError, match="config.json: expected a JSON object"):
        parse_config(raw)


def test_the_unchanged_configs_parse():  # the cases above fail because of the one change, not the base
    for base in (NAFLEX, FIXRES, FIXRES_CLS):
        parse_config(copy.deepcopy(base))


@pytest.fixture
def naflex_copy(tmp_path):
    out = tmp_path / "ckpt"
    shutil.copytree(DEMO_NAFLEX, out)
    return out


@pytest.fixture
def fixres_copy(tmp_path):
    out = tmp_path / "ckpt"
    shutil.copytree(DEMO_FIXRES, out)
    return out


@pytest.mark.parametrize(
    "content, words",
    [
        (b"\xff\xfe{}", ["config.json", "not UTF-8", "0xff"]),
        (b'{"model_type": "siglip2",', ["config.json", "not valid JSON"]),
        (b"[" * 100000 + b"]" * 100000, ["config.json", "not valid JSON"]),
        (b'{"model_type": "siglip2", "vision_config": {"layer_norm_eps": NaN}}', ["layer_norm_eps", "finite"]),
    ],
    ids=["not-utf8", "truncated", "deeply-nested", "nan-token"],
)
def test_bad_config_file(naflex_copy, content, words):
    (naflex_copy / "config.json").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(naflex_copy)
    for word in words:
        assert word in str(info.value), str(info.value)


def edit_json(path, change):
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def setter(key, value):
    def change(data):
        if value is DELETE:
            del data[key]
        else:
            data[key] = value

    return change


# (which demo, key, bad value, error class, words the message must hold)
PREPROCESSOR_CASES = [
    ("naflex", "do_resize", "yes", ImageConfigTypeError, ["do_resize", "true or false", "string 'yes'"]),
    ("naflex", "do_rescale", 1, ImageConfigTypeError, ["do_rescale", "true or false"]),
    ("fixres", "do_normalize", [True], ImageConfigTypeError, ["do_normalize", "true or false"]),
    ("naflex", "resample", 1, ImageConfigError, ["resample=1 is not supported", "2 (bilinear)"]),
    ("naflex", "resample", True, ImageConfigError, ["resample=True is not supported"]),
    ("fixres", "resample", "nearest", ImageConfigError, ["resample='nearest' is not supported"]),
    ("naflex", "rescale_factor", 0, ImageConfigError, ["rescale_factor", "finite number > 0", "got 0"]),
    ("naflex", "rescale_factor", math.nan, ImageConfigError, ["rescale_factor", "finite number > 0"]),
    ("fixres", "rescale_factor", math.inf, ImageConfigError, ["rescale_factor", "finite number > 0"]),
    ("fixres", "rescale_factor", "1/255", ImageConfigTypeError, ["rescale_factor", "expected a number"]),
    ("naflex", "image_mean", [0.5, 0.5], ImageConfigTypeError, ["image_mean must have 1 or 3 values"]),
    ("naflex", "image_mean", ["a", "b", "c"], ImageConfigTypeError, ["image_mean must have 1 or 3 values"]),
    ("fixres", "image_mean", {"r": 0.5}, ImageConfigTypeError, ["image_mean must have 1 or 3 values", "object"]),
    ("naflex", "image_mean", [0.5, math.nan, 0.5], ImageConfigError, ["image_mean", "finite numbers"]),
    ("naflex", "image_std", 0, ImageConfigError, ["image_std", "> 0 (it divides)"]),
    ("fixres", "image_std", [0.5, -0.5, 0.5], ImageConfigError, ["image_std", "> 0 (it divides)"]),
    ("fixres", "image_std", math.inf, ImageConfigError, ["image_std", "finite"]),
    ("fixres", "size", [128, 128], ImageConfigTypeError, ["FixRes size must be", "list [128, 128]"]),
    ("fixres", "size", {"shortest_edge": 128}, ImageConfigTypeError, ["FixRes size must be"]),
    ("fixres", "size", {"height": 0, "width": 128}, ImageConfigError, ["size.height must be at least 1"]),
    ("fixres", "size", {"height": "128", "width": 128}, ImageConfigTypeError, ["size.height must be an int"]),
    ("fixres", "size", {"height": 100000, "width": 100000}, ImageConfigError, ["size.height * size.width", "limit"]),
    ("naflex", "max_num_patches", 0, ImageConfigError, ["max_num_patches must be at least 1"]),
    ("naflex", "max_num_patches", 2.5, ImageConfigTypeError, ["max_num_patches must be an int", "number 2.5"]),
    ("naflex", "max_num_patches", 10**6, ImageConfigError, ["max_num_patches is 1000000", f"limit of {MAX_NUM_PATCHES}"]),
    ("naflex", "patch_size", 0, ImageConfigError, ["patch_size must be at least 1"]),
    ("naflex", "patch_size", "16", ImageConfigTypeError, ["patch_size must be an int"]),
    ("naflex", "patch_size", 1024, ImageConfigError, ["max_num_patches * patch_size^2", "pixels", "limit"]),
]


@pytest.mark.parametrize("demo, key, value, error, words", PREPROCESSOR_CASES,
                         ids=[f"{c[0]}-{c[1]}={c[2]!r}"[:60] for c in PREPROCESSOR_CASES])  # fmt: skip
def test_bad_preprocessor_value(tmp_path, demo, key, value, error, words):
    folder = tmp_path / "ckpt"
    shutil.copytree(DEMO_NAFLEX if demo == "naflex" else DEMO_FIXRES, folder)
    edit_json(folder / "preprocessor_config.json", setter(key, value))
    with pytest.raises(error) as info:
        load_image_processor(folder)
    message = str(info.value)
    assert message.startswith(str(folder / "preprocessor_config.json") + ": "), message
    for word in words:
        assert word in message, message


def test_bad_preprocessor_errors_are_config_errors():
    assert issubclass(ImageConfigError, ConfigError) and issubclass(ImageConfigTypeError, TypeError)


@pytest.mark.parametrize(
    "content, words",
    [(b"{", ["not valid JSON"]), (b"\xff", ["not UTF-8", "offset 0"]), (b"[1, 2]", ["expected a JSON object", "list"])],
    ids=["truncated", "not-utf8", "a-list"],
)
def test_bad_preprocessor_file(naflex_copy, content, words):
    path = naflex_copy / "preprocessor_config.json"
    path.write_bytes(content)
    with pytest.raises((ConfigError, FolderChoiceError)) as info:
        load_image_processor(naflex_copy)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_keyword_overrides_are_checked_too():
    proc = NaFlexImageProcessor()
    with pytest.raises(ImageConfigError, match=f"max_num_patches is 100000, over the limit of {MAX_NUM_PATCHES}"):
        proc([EXAMPLE_IMAGE], max_num_patches=100000)
    with pytest.raises(ImageConfigError, match="image_std"):
        NaFlexImageProcessor(image_std=[0.5, 0.0, 0.5])


# (file, key, bad value): the keys that pick a class must name one
CLASS_NAME_CASES = [
    ("config.json", "model_type", ["siglip2"]),
    ("config.json", "tokenizer_class", 3),
    ("tokenizer_config.json", "tokenizer_class", {"name": "GemmaTokenizer"}),
    ("preprocessor_config.json", "image_processor_type", 2),
    ("preprocessor_config.json", "feature_extractor_type", ["x"]),
]


@pytest.mark.parametrize("file, key, value", CLASS_NAME_CASES, ids=[f"{c[0]}-{c[1]}" for c in CLASS_NAME_CASES])
def test_class_name_keys_must_be_strings(naflex_copy, file, key, value):
    edit_json(naflex_copy / file, setter(key, value))
    with pytest.raises(FolderChoiceError) as info:
        decide(naflex_copy)
    for word in (file, key, "expected a class or type name"):
        assert word in str(info.value), str(info.value)


def test_processor_config_image_processor_must_be_an_object(naflex_copy):
    (naflex_copy / "processor_config.json").write_text(json.dumps({"image_processor": [1]}), encoding="utf-8")
    with pytest.raises(FolderChoiceError, match="processor_config.json: image_processor: expected a JSON object"):
        decide(naflex_copy)


def run_cli(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_commands_that_need_a_preprocessor_say_which_file_is_missing(naflex_copy, capsys):
    os.remove(naflex_copy / "preprocessor_config.json")
    code, out, err = run_cli(["classify", "--model", str(naflex_copy), EXAMPLE_IMAGE, "--labels", "a", "b"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "preprocessor_config.json" in err and str(naflex_copy) in err, err


def test_commands_name_the_bad_preprocessor_key(fixres_copy, capsys):
    edit_json(fixres_copy / "preprocessor_config.json", setter("image_std", 0))
    code, out, err = run_cli(["classify", "--model", str(fixres_copy), EXAMPLE_IMAGE, "--labels", "a", "b"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "preprocessor_config.json" in err and "image_std" in err, err


def test_text_commands_do_not_need_a_preprocessor(naflex_copy, capsys):  # a missing optional file is optional
    os.remove(naflex_copy / "preprocessor_config.json")
    code, out, err = run_cli(["info", "--model", str(naflex_copy)], capsys)
    assert code == 0, err
