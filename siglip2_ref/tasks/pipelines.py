"""Tools on top of the model: zero-shot classification, batched embedding and ranking.

    ranked = zero_shot(model, processor, "cat.jpg", ["a cat", "a dog"])   # [("a cat", 0.93), ("a dog", 0.01)]
    image_embeds = embed_images(model, processor, paths)                  # [I, D], L2-normalised
    hits = search(model, processor, "a red circle", image_embeds, top_k=5)   # tasks/query.py

Everything here goes through the public loading, preprocessing and forward API, so its answers are the
model's answers: texts are padded to 64 tokens, probabilities are sigmoids of
`cos(text, image) * exp(logit_scale) + logit_bias`, exactly as `model(...)` computes `logits_per_image`.

Shapes: docs/shapes.md (I images, T texts, D embedding width, N patch slots; local: n scores ranked, k results kept).
"""

import string

import numpy as np

from ..backend import to_numpy
from ..errors import ImageInputError, InputError
from ..model.head import l2_normalize, sigmoid, similarity_logits
from ..model.model import check_finite_logits
from .stream import capture, prefetched

DEFAULT_TEMPLATE = "This is a photo of {}."  # transformers' ZeroShotImageClassificationPipeline default
IMAGE_BATCH = 16  # images per forward: NaFlex attention is [B, H, N, N], ~100 MB for B/16 at 256 patches
TEXT_BATCH = 64
SKIPPABLE = (ImageInputError, OSError)  # a file that cannot be read or decoded; other errors are bugs or bad settings

# ---------------------------------------------------------------- texts


def text_inputs(model, processor, texts):  # [T] strings -> {"input_ids": [T, 64]}
    """Token ids as the zero-shot pipeline makes them for SigLIP: padded to 64, truncated (EOS kept).

    Mirrors: ZeroShotImageClassificationPipeline.preprocess ("siglip" branch: padding="max_length",
    max_length=64, truncation=True). 64 is the text tower's max_position_embeddings for every official checkpoint.
    """
    length = model.config.text.max_position_embeddings
    return processor(text=list(texts), padding="max_length", max_length=length, truncation=True)


def embed_texts(model, processor, texts, batch_size=TEXT_BATCH, normalize=True):  # [T] -> [T, D]
    """Text embeddings in batches (L2-normalised unless normalize=False), as a host NumPy array."""
    texts = check_texts(texts, "texts")
    out = []
    for start in range(0, len(texts), batch_size):
        ids = text_inputs(model, processor, texts[start : start + batch_size])["input_ids"]  # [b, 64]
        features = model.get_text_features(input_ids=ids)  # [b, D]
        out.append(to_numpy(l2_normalize(features) if normalize else features))
    return np.concatenate(out)


def check_texts(texts, what):
    """A non-empty list of non-empty strings, or an InputError that says which entry is wrong."""
    if isinstance(texts, str):
        raise InputError(f"{what}: expected a list of strings, got the single string {texts!r}; wrap it in a list")
    texts = list(texts)
    if not texts:
        raise InputError(f"{what}: the list is empty; give at least one")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{what}[{i}]: expected a non-empty string, got {text!r}")
    return texts


# ---------------------------------------------------------------- images


def image_options(max_num_patches):
    """Per-call image-processor options (only NaFlex processors take max_num_patches)."""
    return {} if max_num_patches is None else {"max_num_patches": int(max_num_patches)}


def stack_inputs(items):  # list of {name: [1, ...]} -> {name: [b, ...]}
    """One model batch from per-image processor outputs; NaFlex images are each padded to N, so they stack."""
    return {name: np.concatenate([item[name] for item in items]) for name in items[0]}


def image_batches(processor, images, batch_size=IMAGE_BATCH, max_num_patches=None, on_error=None, workers=0):
    """Preprocess `images` lazily, yielding (indices, batch) with at most `batch_size` images each.

    Only one batch of pixels exists at a time (plus, with `workers` threads, up to two batches preprocessed
    ahead), so an iterator of a million paths runs in bounded memory. Images are preprocessed one by one (an
    image's result does not depend on its batch), so one unreadable file costs only itself: with
    `on_error(index, image, error)` given, files that cannot be read or decoded are reported there and skipped;
    without it they raise. workers=0 preprocesses in the caller's thread (the serial pipeline).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    options, image_processor = image_options(max_num_patches), processor.require_image_processor()
    indices, items = [], []
    for i, image, item, error in preprocessed(image_processor, images, options, workers, 2 * batch_size):
        if error is not None:
            if on_error is None:
                raise error
            on_error(i, image, error)
            continue
        indices.append(i)
        items.append(item)
        if len(items) == batch_size:
            yield indices, stack_inputs(items)
            indices, items = [], []
    if items:
        yield indices, stack_inputs(items)


def preprocessed(image_processor, images, options, workers, depth):
    """Yield (index, image, processor output or None, skippable error or None), serially or in worker threads."""
    process = capture(lambda image: image_processor(image, **options), SKIPPABLE)
    if workers < 1:
        for i, image in enumerate(images):
            yield (i, image, *process(image))
        return
    numbered = enumerate(images)
    for (i, image), item, error in prefetched(lambda pair: process(pair[1]), numbered, workers, depth):
        yield (i, image, *item)


def image_features(model, batch, normalize=True):  # batch of I images -> [I, D] host array
    """Pooled image embeddings of one preprocessed batch (pixel_values [+ pixel_attention_mask, spatial_shapes])."""
    features = model.get_image_features(**batch)  # [I, D]
    return to_numpy(l2_normalize(features) if normalize else features)


def iter_image_embeddings(model, processor, images, batch_size=IMAGE_BATCH, normalize=True, max_num_patches=None,
                          on_error=None, workers=0):  # fmt: skip
    """Yield (indices, embeddings [b, D]) batch by batch; see `image_batches` for `on_error` and `workers`."""
    for indices, batch in image_batches(processor, images, batch_size, max_num_patches, on_error, workers):
        yield indices, image_features(model, batch, normalize)


def embed_images(model, processor, images, batch_size=IMAGE_BATCH, normalize=True, max_num_patches=None):  # -> [I, D]
    """Image embeddings (L2-normalised unless normalize=False) of paths, PIL images or arrays, in batches.

    NaFlex images of any sizes and aspect ratios share a batch: each keeps its own patch grid, padded to
    max_num_patches and masked, so an image's embedding does not depend on its batch neighbours.
    """
    images = list(images) if isinstance(images, (list, tuple)) else [images]
    if not images:
        raise InputError("images: the list is empty; give at least one image")
    out = [emb for _, emb in iter_image_embeddings(model, processor, images, batch_size, normalize, max_num_patches)]
    return np.concatenate(out)


# ---------------------------------------------------------------- scores and ranking


def match_logits(model, text_embeds, image_embeds):  # [T, D], [I, D] -> [T, I]
    """logits_per_text from L2-normalised embeddings: cos * exp(logit_scale) + logit_bias (host arrays)."""
    scale, bias = to_numpy(model.params["logit_scale"]), to_numpy(model.params["logit_bias"])
    text_embeds, image_embeds = np.asarray(text_embeds), np.asarray(image_embeds)
    if text_embeds.shape[-1] != image_embeds.shape[-1]:
        raise InputError(f"embedding widths differ: texts {text_embeds.shape[-1]}, images {image_embeds.shape[-1]}; "
                         "were the image embeddings made with another model?")  # fmt: skip
    # Stored rows are checked (finite, unit length) where they are read: embedfile.Embeddings.checked.
    logits = similarity_logits(text_embeds, image_embeds.astype(text_embeds.dtype), scale, bias)
    check_finite_logits(logits, model.params, np)
    return logits


def best_first(scores, k=None):  # [n] -> indices [k]
    """Indices of the k largest scores, best first; ties keep input order (a stable sort, as the pipeline's)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return order if k is None else order[: max(int(k), 0)]


def ranked(items, scores, k=None):
    """[(item, float score)] best first."""
    return [(items[i], float(scores[i])) for i in best_first(scores, k)]


def zero_shot(model, processor, image, labels, template=DEFAULT_TEMPLATE, max_num_patches=None, top_k=None):
    """[(label, probability)] best first for one image; a list of such lists when `image` is a list.

    Each label is put in `template`, the texts are padded to 64 tokens, and each probability is the sigmoid
    of that pair's logit: independent per label, so they need not sum to 1.
    Mirrors: transformers ZeroShotImageClassificationPipeline (siglip branch) and big_vision's zero-shot demo.
    """
    label_embeds = label_embeddings(model, processor, labels, template)  # [L, D]
    images = image if isinstance(image, (list, tuple)) else [image]
    image_embeds = embed_images(model, processor, images, max_num_patches=max_num_patches)  # [I, D]
    results = classify_embeddings(model, label_embeds, image_embeds, list(labels), top_k)
    return results if isinstance(image, (list, tuple)) else results[0]


def label_embeddings(model, processor, labels, template=DEFAULT_TEMPLATE):  # [L] -> [L, D]
    """Embeddings of the zero-shot prompts `template.format(label)`, L2-normalised."""
    labels = check_texts(labels, "labels")
    check_template(template)
    return embed_texts(model, processor, [template.format(label) for label in labels])


def classify_embeddings(model, label_embeds, image_embeds, labels, top_k=None):  # [L, D], [I, D] -> I lists
    """Per image, [(label, sigmoid probability)] best first (ties keep label order, as the pipeline's sort)."""
    probs = sigmoid(match_logits(model, label_embeds, image_embeds).T)  # [I, L]
    return [ranked(labels, row, top_k) for row in probs]


def check_template(template):
    """A hypothesis template with exactly one `{}` slot, that `template.format(label)` accepts.

    Literal braces are written `{{` and `}}`, as str.format reads them.
    """
    if not isinstance(template, str):
        raise InputError(f"template must be a str with one '{{}}' where the label goes, got {type(template).__name__}")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:  # "Single '}' encountered", "expected '}' before end of string"
        raise InputError(f"template {template!r} is not a valid format string ({e}); write a literal brace as "
                         "'{{' or '}}' and put '{}' where the label goes") from None
    if not fields:
        raise InputError(f"template {template!r} has no '{{}}'; expected exactly one where the label goes, e.g. 'This is a photo of {{}}.'")
    if len(fields) > 1:
        raise InputError(f"template {template!r} has {len(fields)} replacement fields; expected exactly one '{{}}' "
                         "where the label goes (write literal braces as '{{' and '}}')")
    name, spec, conv = fields[0]
    if name != "" or spec or conv:
        field = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        raise InputError(f"template {template!r} has the field {field!r}; expected exactly one plain '{{}}' where the label goes")


def rank_texts(model, processor, image, texts, top_k=None, max_num_patches=None):
    """[(text, probability)] best first: which captions match one image (texts used as given, no template)."""
    texts = check_texts(texts, "texts")
    text_embeds = embed_texts(model, processor, texts)  # [T, D]
    image_embeds = embed_images(model, processor, [image], max_num_patches=max_num_patches)  # [1, D]
    return ranked(texts, sigmoid(match_logits(model, text_embeds, image_embeds)[:, 0]), top_k)


def rank_images(model, processor, text, images, top_k=None, max_num_patches=None):
    """[(image index, probability)] best first: which of `images` match the text `text`."""
    text = check_texts([text], "text")[0]
    image_embeds = embed_images(model, processor, images, max_num_patches=max_num_patches)  # [I, D]
    text_embeds = embed_texts(model, processor, [text])  # [1, D]
    probs = sigmoid(match_logits(model, text_embeds, image_embeds)[0])  # [I]
    return ranked(list(range(len(image_embeds))), probs, top_k)
