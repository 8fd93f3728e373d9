"""Every error the library raises on bad input, in one place (the modules that raise them re-export them).

Each is a ValueError (or FileNotFoundError) subclass, so `except ValueError` still catches them all; the message
names the file, key, argument or stage, and what was expected (docs/bad_input.md lists the input classes).

    ValueError
      ConfigError              config.json cannot describe a SigLIP / SigLIP 2 model
        ImageConfigError       a preprocessor setting the image processors cannot honour
          ImageConfigTypeError   ... of the wrong JSON type (also a TypeError)
        TokenizerFileError     a tokenizer file that cannot be read
      CheckpointError          a weight file or shard index that cannot be loaded as the config describes
      FolderChoiceError        transformers would raise for this component of the checkpoint folder
      InputError               model inputs whose shapes or values do not fit the model
        NonFiniteError         a forward produced NaN or inf (names the first stage)
        TextEncodingError      a str holding a lone surrogate (also a TypeError)
      ImageInputError          an image that cannot be preprocessed
        ImageFileError         a path that does not hold a readable image
        ImageTooLargeError     an image over Pillow's decompression-bomb limit
        EmbeddingsFileError    an embeddings file (index) that embed did not write, or with inconsistent rows
      IndexMismatch            an existing index made with another model, other settings or dtypes
      DumpError                not a readable stage dump, or two dumps that cannot be compared
    FileNotFoundError
      CheckpointNotFound       neither a folder nor a hub id present in the local cache
"""


class ConfigError(ValueError):
    """A config.json that cannot describe a SigLIP / SigLIP 2 model."""


class ImageConfigError(ConfigError):
    """A preprocessor setting the image processors cannot honour (from preprocessor_config.json or a keyword)."""


class ImageConfigTypeError(ImageConfigError, TypeError):
    """A preprocessor setting of the wrong JSON type (also a TypeError, as Python's own type errors)."""


class TokenizerFileError(ConfigError):
    """A tokenizer file (tokenizer.model, tokenizer.json, tokenizer_config.json, ...) that cannot be read."""


class CheckpointError(ValueError):
    """A checkpoint folder or weight file that cannot be loaded as the config describes."""


class FolderChoiceError(ValueError):
    """transformers would raise for this component of the folder; the message names the files."""


class InputError(ValueError):
    """Model inputs whose shapes or values do not fit the model."""


class NonFiniteError(InputError):
    """A forward produced NaN or inf: the message names the first stage (and weight) where it appeared."""


class TextEncodingError(InputError, TypeError):
    """A str holding a lone surrogate. `tokenizers` raises TypeError on it, so this is both that and an InputError."""


class ImageInputError(ValueError):
    """An image that cannot be preprocessed: empty, NaN, out of range, unsupported mode or shape."""


class ImageFileError(ImageInputError):
    """A path that does not hold a readable image (missing, truncated, not an image)."""


class ImageTooLargeError(ImageInputError):
    """An image file larger than Pillow's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`)."""


class EmbeddingsFileError(InputError):
    """An embeddings file that is not one `embed` wrote, or whose rows or metadata are inconsistent."""


class IndexMismatch(ValueError):
    """An existing index made with another model, other preprocessing settings or dtypes."""


class DumpError(ValueError):
    """A file that is not a readable stage dump, or two dumps that cannot be compared."""


class CheckpointNotFound(FileNotFoundError):
    """Neither a folder nor a hub id present in the local cache."""
