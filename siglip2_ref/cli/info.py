"""`siglip2-ref info`: the facts of a checkpoint (sizes, parameters, dtypes, tokenizer, image processor)."""

import json

from ..checkpoint.weights import FLOAT_STORAGE_NAMES
from ..preprocess.resize import RESAMPLE_NAMES
from .options import EXIT_OK, checkpoint_folder, load, plural

NAME = "info"
SUMMARY = "checkpoint facts: sizes, parameters, dtypes, tokenizer"
IMAGES = False  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref info
  siglip2-ref info --model ~/checkpoints/siglip2-base-patch16-naflex --json"""


def configure(p):
    p.add_argument("--json", action="store_true", help="print the facts as JSON")


def count_parameters(tree):
    if isinstance(tree, dict):
        return sum(count_parameters(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(count_parameters(v) for v in tree)
    return int(tree.size)


def storage_summary(folder):
    """({safetensors dtype: tensor count}, total bytes of the weight files)."""
    from ..checkpoint.weights import read_tensors, weight_files

    counts = {}
    for _, tag in read_tensors(folder).values():
        counts[tag] = counts.get(tag, 0) + 1
    return counts, sum(p.stat().st_size for p in weight_files(folder))


def model_facts(model, processor, folder, args):
    """Everything `info` prints, as a dict."""
    cfg, params = model.config, model.params
    facts = {"checkpoint": str(folder), "model_type": cfg.model_type, "architecture": cfg.architecture,
             "variant": cfg.variant, "towers": cfg.towers}  # fmt: skip
    if cfg.vision is not None:
        facts["vision"] = {k: getattr(cfg.vision, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                           "num_attention_heads", "patch_size", "vision_use_head")}  # fmt: skip
        facts["vision"]["position_grid"] = cfg.vision.grid_size
        facts["vision"][("num_patches" if cfg.variant == "naflex" else "image_size")] = (
            cfg.vision.num_patches if cfg.variant == "naflex" else cfg.vision.image_size)  # fmt: skip
    if cfg.text is not None:
        facts["text"] = {k: getattr(cfg.text, k) for k in ("vocab_size", "hidden_size", "intermediate_size",
                         "num_hidden_layers", "num_attention_heads", "max_position_embeddings")}  # fmt: skip
        facts["text"]["projection_size"] = cfg.text.output_size
    facts["parameters"] = {name: count_parameters(params[name]) for name in params if not name.startswith("logit_")}
    facts["parameters"]["total"] = count_parameters(params)
    stored, size = storage_summary(folder)
    facts["weights"] = {"stored_as": stored, "bytes": size, "compute_dtype": args.dtype, "backend": args.backend,
                        "quantization": model.quantization}  # fmt: skip
    if "logit_scale" in params:
        import numpy as np

        scale, bias = (float(np.asarray(params[k]).reshape(-1)[0]) for k in ("logit_scale", "logit_bias"))
        facts["logits"] = {"logit_scale": scale, "exp_logit_scale": float(np.exp(scale)), "logit_bias": bias}
    facts["tokenizer"] = tokenizer_facts(processor)
    if processor.image_processor is not None:  # None: a folder without preprocessor_config.json (text only)
        facts["image_processor"] = dict(processor.image_processor.config, resize_backend=getattr(args, "resize_backend", "pil"))
    else:
        facts["image_processor"] = None
    return facts


def tokenizer_facts(processor):
    """Tokenizer class (as transformers' AutoTokenizer picks it for the folder), vocabulary and text rules."""
    tok = processor.tokenizer
    facts = {}
    if processor.choices is not None and processor.choices.tokenizer_class:
        facts["tokenizer_class"] = processor.choices.tokenizer_class
    for name in ("vocab_size", "lowercase", "pad_token_id", "eos_token_id"):
        value = getattr(tok, name, None)
        if value is not None and not callable(value):
            facts[name] = value
    return facts


def run(args):
    folder = checkpoint_folder(args)
    model, processor = load(args, folder)
    facts = model_facts(model, processor, folder, args)
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
        return EXIT_OK
    for line in info_lines(facts):
        print(line)
    return EXIT_OK


def info_lines(f):
    """`info`'s human-readable page, one line per topic."""
    kind = {"naflex": "NaFlex: native aspect ratio, variable patch count", "fixres": "FixRes: fixed square resolution"}
    lines = [f"checkpoint    {f['checkpoint']}",
             f"model         {f['architecture'] or f['model_type']} (model_type {f['model_type']!r}; {kind[f['variant']]})"]  # fmt: skip
    if "vision" in f:
        v = f["vision"]
        grid = f"{v['position_grid']}x{v['position_grid']}" + (
            " (resized to each image's grid)" if "num_patches" in v else f", image {v['image_size']}x{v['image_size']} px")
        lines.append(f"vision        width {v['hidden_size']}, {plural(v['num_hidden_layers'], 'layer')} x {v['num_attention_heads']} heads, "
                     f"MLP {v['intermediate_size']}, patch {v['patch_size']} px, position grid {grid}")  # fmt: skip
    if "text" in f:
        t = f["text"]
        lines.append(f"text          width {t['hidden_size']}, {plural(t['num_hidden_layers'], 'layer')} x {t['num_attention_heads']} heads, "
                     f"MLP {t['intermediate_size']}, vocabulary {t['vocab_size']:,}, {t['max_position_embeddings']} positions, "
                     f"output {t['projection_size']}")  # fmt: skip
    p = dict(f["parameters"])
    total = p.pop("total")
    parts = [f"{name.replace('_model', '')} {count:,}" for name, count in p.items()]
    lines.append(f"parameters    {total:,} = " + " + ".join(parts) + (" + logit scale and bias 2" if "logits" in f else ""))
    w = f["weights"]
    stored = ", ".join(f"{FLOAT_STORAGE_NAMES.get(tag, tag)} x{n} tensors" for tag, n in w["stored_as"].items())
    lines.append(f"weights       {w['bytes'] / 1e6:,.1f} MB on disk ({stored}); computing in {w['compute_dtype']} on {w['backend']}")
    q = w.get("quantization")
    if q:
        how = "per output channel" if q["bits"] == 8 else f"groups of {q['group_size']} inputs"
        lines.append(f"quantized     Linear weights int{q['bits']}, {how}, " + ("as stored" if q["stored"] else "at load time"))
    if "logits" in f:
        g = f["logits"]
        sign = "-" if g["logit_bias"] < 0 else "+"
        lines.append(f"logits        {g['exp_logit_scale']:.2f} * cos(image, text) {sign} {abs(g['logit_bias']):.2f}   "
                     f"(exp(logit_scale), logit_bias); probability = sigmoid(logit)")  # fmt: skip
    lines.append("tokenizer     " + tokenizer_line(f["tokenizer"]))
    lines.append("images        " + image_processor_line(f["image_processor"], f["variant"]) if f["image_processor"]
                 else "images        none: no preprocessor_config.json in the folder")
    return lines


def tokenizer_line(t):
    rules = ["lowercases text" if t.get("lowercase") else "keeps case"]
    if t.get("eos_token_id") is not None:
        rules.append(f"appends EOS {t['eos_token_id']}")
    if t.get("pad_token_id") is not None:
        rules.append(f"pads with {t['pad_token_id']} to 64")
    return f"{t.get('tokenizer_class') or 'SentencePiece'} (tokenizer.model), {t.get('vocab_size', '?'):,} pieces; " + ", ".join(rules)


def image_processor_line(c, variant):
    if variant == "naflex":
        size = f"NaFlex, up to {c.get('max_num_patches')} patches of {c.get('patch_size')} px, aspect ratio kept"
    else:
        size = f"resized to {c['size']['width']}x{c['size']['height']}" if isinstance(c.get("size"), dict) else "FixRes"
    resample = RESAMPLE_NAMES.get(c.get("resample"), c.get("resample"))
    return (f"{size}; {resample} resize ({c.get('resize_backend')} numerics), pixels * {c.get('rescale_factor', 0):.6g}, "
            f"mean {c.get('image_mean')}, std {c.get('image_std')}")  # fmt: skip
