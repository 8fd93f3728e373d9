"""Reading a checkpoint folder's JSON files: one reader, one kind of message for every file.

Every JSON file of a folder (config.json, preprocessor_config.json, tokenizer_config.json, ...) is read here.
A file that is not UTF-8, not JSON, or nested too deeply for Python's parser gets one error naming the file;
each caller passes its own error class, so a bad config.json is a ConfigError and a bad tokenizer file a
TokenizerFileError, as the rest of that caller's checks.
"""

import json
import os


def json_kind(value):
    """How a parsed JSON value reads in an error message: `list [1, 2]`, `string 'x'`, ..."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}
    kind = "null" if value is None else names.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text[:60] + '...' if len(text) > 60 else text}"


def read_json(path, error, label=None):
    """The parsed JSON in `path`; `error(f"{label}: ...")` (label defaults to the path) when it is not JSON."""
    label = label or os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{label}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); expected a JSON file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{label}: not valid JSON ({e})") from None
    except RecursionError:
        raise error(f"{label}: not valid JSON (nested too deeply)") from None


def read_json_object(path, error, what="settings", label=None):
    """`read_json`, refusing anything but a JSON object (every file of a checkpoint folder is one)."""
    data = read_json(path, error, label)
    if not isinstance(data, dict):
        raise error(f"{label or os.fspath(path)}: expected a JSON object of {what}, got {json_kind(data)}")
    return data
