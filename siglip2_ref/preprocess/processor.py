"""Processor: texts and images -> the arrays a SigLIP 2 model takes, with transformers' names and dtypes.

Text defaults are padding="max_length", max_length=64, truncation=True for both variants. transformers'
Siglip2Processor (NaFlex) has these defaults; SiglipProcessor (FixRes) has none, so there a bare call gives
unpadded ids and a different embedding. We default to them deliberately: the text tower pools position 63, which
only means what the model learned when every text is padded to 64 (docs/parity.md "Pitfalls" 1). Passing any of the
three explicitly (padding=False, "longest", another max_length, ...) behaves as in transformers.
"""

import os

from ..checkpoint.choices import FolderChoiceError, decide
from ..checkpoint.folder import resolve_checkpoint
from .images import load_image_processor
from .tokenizer import load_tokenizer

TEXT_DEFAULTS = {"padding": "max_length", "max_length": 64, "truncation": True}
TEXT_KEYS = ("padding", "max_length", "truncation", "pad_to_multiple_of", "add_special_tokens",
             "return_attention_mask", "padding_side")


class Processor:
    """Tokenizer + image processor behind one call. Mirrors: SiglipProcessor / Siglip2Processor."""

    def __init__(self, tokenizer, image_processor, text_defaults=None, folder=None, choices=None):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.text_defaults = dict(TEXT_DEFAULTS if text_defaults is None else text_defaults)
        self.folder = folder  # the checkpoint folder it was loaded from, for error messages
        self.choices = choices  # the FolderChoices it was built from (which classes transformers would pick), or None

    def require_image_processor(self):
        """The image processor, or one clear error naming the folder and the missing file (images need it)."""
        if self.image_processor is None:
            where = f"{self.folder}: " if self.folder else ""
            raise FolderChoiceError(
                f"{where}no image processor: preprocessor_config.json (or processor_config.json's image_processor) "
                "was not found, and images cannot be preprocessed without it"
            )
        return self.image_processor

    @property
    def variant(self):
        return self.image_processor.variant if self.image_processor is not None else None

    def __repr__(self):
        return f"Processor(variant={self.variant!r}, tokenizer={type(self.tokenizer).__name__}, {self.image_processor!r})"

    def __call__(self, text=None, images=None, return_tensors="np", **kwargs):
        """{"input_ids" [T, L] int64} and/or image arrays; either of `text=` / `images=` may be omitted.

        Text keywords: padding, max_length, truncation (defaults above), pad_to_multiple_of, add_special_tokens,
        return_attention_mask. Image keywords: max_num_patches (NaFlex) and any preprocessor_config.json key.
        """
        if text is None and images is None:
            raise ValueError("pass text=..., images=... or both")
        text_kwargs = {k: kwargs.pop(k) for k in TEXT_KEYS if k in kwargs}
        out = {}
        if text is not None:
            if self.tokenizer is None:
                raise ValueError("this processor has no tokenizer (tokenizer.model was not found)")
            out.update(self.tokenizer(text, return_tensors=return_tensors, **{**self.text_defaults, **text_kwargs}))
        if images is not None:
            self.require_image_processor()
            if self.variant == "fixres" and "max_num_patches" in kwargs:
                raise ValueError("max_num_patches applies to NaFlex checkpoints only; this one is FixRes")
            out.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        elif kwargs:
            raise TypeError(f"unexpected keyword argument(s) {sorted(kwargs)} for text-only processing")
        return out


def checkpoint_folder(path):
    """A local folder for `path` (a folder, or a hub id found in the offline Hugging Face cache)."""
    return os.fspath(resolve_checkpoint(path))


def load_processor(path, resize_backend="pil", lowercase=None):
    """Processor for a checkpoint folder or cached hub id.

    resize_backend: "pil" (Pillow >= 13 numerics, default) or "torchvision" (transformers 5.x default numerics).
    lowercase: None = as the tokenizer class transformers 5.24 picks for the folder (Siglip2Tokenizer lowercases:
    a NaFlex config.json; GemmaTokenizer does not); True/False forces. The folder's files are read once, by
    siglip2_ref.checkpoint.choices (docs/checkpoint_folder.md). Works with only the preprocessing files present (no
    config.json / weights needed); raises FolderChoiceError where transformers' AutoImageProcessor would.
    """
    folder = checkpoint_folder(path)
    has_tokenizer = os.path.isfile(os.path.join(folder, "tokenizer.model"))
    choices = decide(folder)
    has_images = choices.image_processor_file is not None
    if not (has_tokenizer or has_images):
        raise FileNotFoundError(
            f"{folder}: neither tokenizer.model nor preprocessor_config.json (or processor_config.json) found"
        )
    image_processor = load_image_processor(folder, resize_backend, choices=choices) if has_images else None
    tokenizer = load_tokenizer(folder, lowercase=lowercase, choices=choices) if has_tokenizer else None
    return Processor(tokenizer, image_processor, folder=folder, choices=choices)
