"""Record transformers' preprocessing outputs (tokenizer ids, image processor arrays) as goldens.

Run with an environment that has torch, torchvision and transformers (both image back-ends):

    python golden/make_golden_preprocess.py            # writes golden/preprocess/

Outputs (all small; see golden/preprocess/README.md):
  tokenizer/      a toy Gemma-style tokenizer trained here (golden/toy_tokenizer.py), checkpoint file layout
  text.json       texts and transformers' ids for them (FixRes GemmaTokenizer, NaFlex Siglip2Tokenizer)
  images.npz      pixel_values / pixel_attention_mask / spatial_shapes per (image case, config, back-end)
  meta.json       library versions, seed, command, configs, cases, digests of the large case, and the
                  max differences of siglip2_ref against these goldens measured at generation time
  float_arrays.npz / float_arrays.json
                  float-array inputs (float16/32/64, [0, 1] with do_rescale=False, [0, 255] with do_rescale=True,
                  HWC and CHW) through the torchvision back-end, whose resize runs in float (ATen's float kernel)
Images are not stored: tests redraw them from golden/synthetic_images.py (integer recipes + seeds).

    python golden/make_golden_preprocess.py --parts images float   # leave text.json and tokenizer/ as they are
"""

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from golden.synthetic_images import CASES, FLOAT_CASES, draw, draw_float, sixteen_bit_reference_rgb  # noqa: E402
from golden.toy_tokenizer import make_gemma_style_tokenizer, text_with_token_count  # noqa: E402

FORMAT_VERSION = 1
SEED = 20250227
HUB_COMMON = {  # preprocessor_config.json as transformers' convert_siglip_to_hf.py / convert_siglip2_to_hf.py write it, minus do_convert_rgb
    "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5], "rescale_factor": 0.00392156862745098,
}
FIXRES = {"image_processor_type": "SiglipImageProcessor", "processor_class": "SiglipProcessor", **HUB_COMMON}
NAFLEX = {"image_processor_type": "Siglip2ImageProcessor", "processor_class": "Siglip2Processor", "patch_size": 16,
          **HUB_COMMON}
CONFIGS = {
    # the official settings (golden/preprocess/README.md): compared by sha256 digest for every case, stored for FULL_CASES
    "fixres224_bilinear": {**FIXRES, "resample": 2, "size": {"height": 224, "width": 224}},
    "naflex256": {**NAFLEX, "resample": 2, "max_num_patches": 256},
    # small outputs, stored in full for every case (readable failures)
    "fixres64x48_bilinear": {**FIXRES, "resample": 2, "size": {"height": 64, "width": 48}},
    "fixres96x80_bicubic": {**FIXRES, "resample": 3, "size": {"height": 96, "width": 80}},
    "naflex16": {**NAFLEX, "resample": 2, "max_num_patches": 16},
}
DIGEST_CONFIGS = {"fixres224_bilinear", "naflex256"}
FULL_CASES = {"rgb_768x1024", "rgb_tall_1500x400"}
BACKENDS = ("pil", "torchvision")
NOT_BIT_EXACT = set()  # (case, back-end) pairs compared with a tolerance; none since the float resize is exact
FLOAT_CONFIGS = {  # float-array goldens, torchvision back-end; do_rescale follows each case's value range
    "fixres32x24_bilinear": {**FIXRES, "resample": 2, "size": {"height": 32, "width": 24}},  # stored in full
    "fixres24x40_bicubic": {**FIXRES, "resample": 3, "size": {"height": 24, "width": 40}},
    "naflex9": {**NAFLEX, "resample": 2, "max_num_patches": 9},
    "fixres224_bilinear": CONFIGS["fixres224_bilinear"],  # official settings: sha256 digests only
    "naflex256": CONFIGS["naflex256"],
}
FLOAT_DIGEST_CONFIGS = {"fixres224_bilinear", "naflex256"}


TRAIN_TEXTS_WORDS = (
    "a photo of the cat dog bird car house tree street city night day small large red green blue white black "
    "two three people man woman child playing running sitting on in with under near water sky mountain beach "
    "This is picture image painting drawing of an old new Zürich École São Paulo naïve café résumé Ελληνικά "
    "ΟΔΟΣ οδός Σίσυφος 東京 猫 犬 写真 北京 서울 고양이 Москва кошка 😀 🐱 🚗 123 2024 3.14 #tag @user"
).split()


def processor_kwargs(config):
    """A Hub-like config without the class-name keys: the keyword arguments of both libraries' processors."""
    return {k: v for k, v in config.items() if k not in ("image_processor_type", "processor_class")}


def hf_image_processor(config_name, backend, config=None):
    """transformers' processor for a Hub-like config; do_convert_rgb=True so non-RGB inputs are converted (5.x)."""
    from transformers import (Siglip2ImageProcessor, Siglip2ImageProcessorPil, SiglipImageProcessor,
                              SiglipImageProcessorPil)

    cfg = processor_kwargs(CONFIGS[config_name] if config is None else config)
    naflex = config_name.startswith("naflex")
    cls = {(False, "pil"): SiglipImageProcessorPil, (False, "torchvision"): SiglipImageProcessor,
           (True, "pil"): Siglip2ImageProcessorPil, (True, "torchvision"): Siglip2ImageProcessor}[(naflex, backend)]
    return cls(**cfg, do_convert_rgb=True)


def hf_input(case, image):
    """What is handed to transformers for a case (see README: 16-bit rule, EXIF files, bare 2-D arrays)."""
    from transformers.image_utils import load_image

    if case.kind == "exif_png":
        return load_image(image)  # EXIF transpose + RGB, as the pipeline does for paths
    if case.kind in ("I;16", "I"):
        return sixteen_bit_reference_rgb(image)  # our 16->8-bit rule; transformers itself would clip at 255
    if case.kind == "array_hw_gray":
        return image[..., None]  # transformers rejects bare 2-D arrays; [H, W, 1] is the same grey image
    return image


def encode_values(values):
    """Lossless compact form of a float32 array: {table, index} when it has few distinct values, else {raw}."""
    table, index = np.unique(values, return_inverse=True)
    if len(table) > 65536:
        return {"raw": values}
    index = index.reshape(values.shape).astype(np.uint8 if len(table) <= 256 else np.uint16)
    assert np.array_equal(table[index], values)
    return {"table": table.astype(values.dtype), "index": index}


def sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def stored_form(case, config_name, backend):
    """'full' (arrays), 'digest' (sha256 only) or 'none' for a golden, by size and exactness."""
    full = config_name not in DIGEST_CONFIGS or case.name in FULL_CASES
    if (case.name, backend) in NOT_BIT_EXACT:
        return "full" if full else "none"
    return "full" if full else "digest"


def record_images(out_dir, tmp):
    """Run every case through every config and back-end; store outputs; measure siglip2_ref against them."""
    from siglip2_ref.preprocess.images import ImageProcessor

    arrays, digests, diffs, same_as_pil = {}, {}, {}, []
    for case in CASES:
        image = draw(case, tmp)
        for config_name, cfg in CONFIGS.items():
            variant = "naflex" if config_name.startswith("naflex") else "fixres"
            keys = {k: v for k, v in cfg.items() if k not in ("image_processor_type", "processor_class")}
            refs = {}
            for backend in BACKENDS:
                ref = hf_image_processor(config_name, backend)(hf_input(case, image), return_tensors="np")
                ref = refs[backend] = {k: np.asarray(v) for k, v in ref.items()}
                ours = ImageProcessor(variant, backend, **keys)(image)
                key = f"{case.name}|{config_name}|{backend}"
                diffs[key] = {k: float(np.abs(ours[k].astype(np.float64) - ref[k]).max()) for k in ref}
                diffs[key]["dtypes_equal"] = all(ours[k].dtype == ref[k].dtype for k in ref)
                form = stored_form(case, config_name, backend)
                if form != "none":
                    digests[key] = {k: {"sha256": sha256(v), "shape": list(v.shape), "dtype": str(v.dtype)}
                                    for k, v in ref.items()}
                if form != "full":
                    continue
                if backend == "torchvision" and all(np.array_equal(ref[k], refs["pil"][k]) for k in ref):
                    same_as_pil.append(key)  # stored once, under the pil key
                    continue
                for part, array in encode_values(ref["pixel_values"]).items():
                    arrays[f"{key}|pixel_values_{part}"] = array
                for k in ("pixel_attention_mask", "spatial_shapes"):
                    if k in ref:
                        arrays[f"{key}|{k}"] = ref[k]
        print(f"images: {case.name} done", flush=True)
    np.savez_compressed(os.path.join(out_dir, "images.npz"), **arrays)
    return digests, diffs, same_as_pil


def float_case_config(case, config_name):
    """The float goldens' config for a case: do_rescale=False for [0, 1] values, True for [0, 255]."""
    return {**FLOAT_CONFIGS[config_name], "do_rescale": case.value_range == "255"}


def record_float_arrays(out_dir):
    """Float-array cases through transformers' torchvision processors; store small outputs, digest large ones."""
    from siglip2_ref.preprocess.images import ImageProcessor

    arrays, digests, diffs = {}, {}, {}
    for case in FLOAT_CASES:
        image = draw_float(case)
        for config_name in FLOAT_CONFIGS:
            cfg = float_case_config(case, config_name)
            ref = hf_image_processor(config_name, "torchvision", cfg)(image.copy(), return_tensors="np")
            ref = {k: np.asarray(v) for k, v in ref.items()}
            variant = "naflex" if config_name.startswith("naflex") else "fixres"
            ours = ImageProcessor(variant, "torchvision", **processor_kwargs(cfg))(image)
            key = f"{case.name}|{config_name}"
            diffs[key] = {k: float(np.abs(ours[k].astype(np.float64) - ref[k]).max()) for k in ref}
            diffs[key]["dtypes_equal"] = all(ours[k].dtype == ref[k].dtype for k in ref)
            digests[key] = {k: {"sha256": sha256(v), "shape": list(v.shape), "dtype": str(v.dtype)}
                            for k, v in ref.items()}
            if config_name not in FLOAT_DIGEST_CONFIGS:
                arrays.update({f"{key}|{k}": v for k, v in ref.items()})
        print(f"float arrays: {case.name} done", flush=True)
    np.savez_compressed(os.path.join(out_dir, "float_arrays.npz"), **arrays)
    meta = {"format_version": FORMAT_VERSION, "versions": versions(), "command": command_line(),
            "back-end": "torchvision", "configs": FLOAT_CONFIGS, "digest_configs": sorted(FLOAT_DIGEST_CONFIGS),
            "cases": [c._asdict() for c in FLOAT_CASES], "digests": digests,
            "siglip2_ref_max_abs_diff_at_generation": diffs}
    with open(os.path.join(out_dir, "float_arrays.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    worst = max(v for d in diffs.values() for k, v in d.items() if k != "dtypes_equal")
    print(f"float arrays: siglip2_ref vs transformers, max abs diff {worst}, dtypes equal:",
          all(d["dtypes_equal"] for d in diffs.values()))


def command_line():
    """The command that ran this script, as recorded next to the goldens."""
    return " ".join(["python", "golden/make_golden_preprocess.py", *sys.argv[1:]])


def training_texts(rng):
    """A deterministic corpus for the toy tokenizer: random word sequences, with case and spacing variety."""
    texts = []
    for _ in range(3000):
        words = rng.choice(TRAIN_TEXTS_WORDS, size=int(rng.integers(1, 14)))
        text = " ".join(words)
        texts.append(text.lower() if rng.random() < 0.5 else text)
    return texts


def golden_texts(hf_tok):
    """The text set: scripts, special-token strings, whitespace, lengths around the 64-token limit, empty."""
    texts = [
        "", " ", "a photo of a cat", "This is a photo of a dog.", "A Photo Of Two CATS", "  leading spaces",
        "trailing spaces   ", "multiple   inner    spaces", "tab\tseparated\ttext", "new\nline\n\nand\r\nCRLF",
        "Zürich École São Paulo naïve café", "ΟΔΟΣ οδός ΣΊΣΥΦΟΣ Σίσυφος", "東京の猫の写真", "서울 고양이", "Москва КОШКА",
        "😀 🐱🚗 emoji", "🏳️‍🌈 zwj sequence", "e\u0301 combining acute", "<pad>", "<eos>", "<bos>", "<unk>", "<mask>",
        "a <eos> in the middle", "<pad><pad>x<mask>", " <eos> ", "<eos", "eos>", "<EOS>", "İstanbul DİYARBAKIR",
        "ẞ STRASSE", "ǅ ǈ titlecase", "123 456.789 #tag @user", "\u00a0nbsp\u2003em space", "\u200bzero width",
        "x" * 300, "word " * 80,
    ]
    for target in (62, 63, 64, 65):
        texts.append(text_with_token_count(hf_tok, target, "the cat sat on a red mat near two small dogs in Zürich"))
    return texts


def record_text(out_dir):
    """Train the toy tokenizer, then record transformers' ids for the text set under several options."""
    from transformers import GemmaTokenizer, Siglip2Tokenizer

    rng = np.random.default_rng(SEED)
    tok_dir = os.path.join(out_dir, "tokenizer")
    make_gemma_style_tokenizer(training_texts(rng), tok_dir, vocab_size=1000)
    toks = {"fixres": GemmaTokenizer.from_pretrained(tok_dir), "naflex": Siglip2Tokenizer.from_pretrained(tok_dir)}
    texts = golden_texts(toks["fixres"])
    options = {
        "max_length64": dict(padding="max_length", max_length=64, truncation=True),
        "max_length16": dict(padding="max_length", max_length=16, truncation=True),
        "no_padding": dict(),
        "longest": dict(padding="longest"),
    }
    records = {}
    for variant, tok in toks.items():
        for opt_name, opts in options.items():
            if opt_name == "longest":
                records[f"{variant}|{opt_name}"] = tok(texts, **opts)["input_ids"]
            else:
                records[f"{variant}|{opt_name}"] = [tok(t, **opts)["input_ids"] for t in texts]
        records[f"{variant}|decode"] = [tok.decode(tok(t)["input_ids"], skip_special_tokens=True) for t in texts]
    with open(os.path.join(out_dir, "text.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": texts, "options": options, "ids": records,
                   "classes": {k: type(v).__name__ for k, v in toks.items()}}, f, ensure_ascii=False, indent=0)
    return {k: type(v).__name__ for k, v in toks.items()}


def versions():
    import PIL
    import torch
    import torchvision
    import transformers

    return {"transformers": transformers.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "preprocess"))
    parser.add_argument("--parts", nargs="+", choices=["text", "images", "float"], default=["text", "images", "float"],
                        help="which goldens to (re)write; the others are left as they are")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings("ignore")
    if "text" in args.parts:
        tok_classes = record_text(args.out)
    else:
        with open(os.path.join(args.out, "meta.json"), encoding="utf-8") as f:
            tok_classes = json.load(f)["tokenizer_classes"]  # text goldens kept as they are
    if "images" in args.parts:
        record_image_goldens(args.out, tok_classes)
    if "float" in args.parts:
        record_float_arrays(args.out)


def record_image_goldens(out_dir, tok_classes):
    """images.npz and meta.json (which also names the tokenizer classes of text.json)."""
    with tempfile.TemporaryDirectory() as tmp:
        digests, diffs, same_as_pil = record_images(out_dir, tmp)
    meta = {
        "format_version": FORMAT_VERSION, "seed": SEED, "versions": versions(),
        "command": command_line(), "configs": CONFIGS, "backends": list(BACKENDS),
        "cases": [c._asdict() for c in CASES], "digest_configs": sorted(DIGEST_CONFIGS),
        "full_cases": sorted(FULL_CASES), "digests": digests, "torchvision_same_as_pil": same_as_pil,
        "not_bit_exact": sorted("|".join(k) for k in NOT_BIT_EXACT),
        "tokenizer_classes": tok_classes, "siglip2_ref_max_abs_diff_at_generation": diffs,
    }
    with open(os.path.join(out_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    worst = {}
    for key, d in diffs.items():
        backend = key.split("|")[2]
        worst[backend] = max(worst.get(backend, 0.0), max(v for k, v in d.items() if k != "dtypes_equal"))
    print("siglip2_ref vs transformers, max abs diff over all cases and configs:", worst)


if __name__ == "__main__":
    main()
