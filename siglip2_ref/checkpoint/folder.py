"""Finding a checkpoint folder: a local path, or a hub id resolved in the local Hugging Face cache (offline)."""

import os
from pathlib import Path
from ..errors import CheckpointNotFound


def hub_cache_dirs():
    """Where huggingface_hub keeps downloads, in its own order of precedence."""
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    dirs.append(Path.home() / ".cache" / "huggingface" / "hub")
    return list(dict.fromkeys(dirs))


def cached_snapshot(repo_id, cache_dir):
    """The snapshot folder of `repo_id` that refs/main points to (else the newest one), or None."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if repo.is_dir() else []
    return snapshots[-1] if snapshots else None


def resolve_checkpoint(path_or_id):
    """A local folder for `path_or_id`; never touches the network."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    looked = [f"{path} (no such folder)"]
    name = str(path_or_id)
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        for cache_dir in hub_cache_dirs():
            snapshot = cached_snapshot(name, cache_dir)
            if snapshot is not None:
                return snapshot
            looked.append(f"{cache_dir / ('models--' + name.replace('/', '--'))} (not in the Hugging Face cache)")
    raise CheckpointNotFound(
        f"checkpoint {name!r} not found. Looked in:\n  " + "\n  ".join(looked) + "\n"
        "Nothing is downloaded here. On a machine with internet run\n"
        f"  hf download {name if '/' in name else 'google/siglip2-base-patch16-naflex'}   (older huggingface_hub: huggingface-cli download)\n"
        "then copy the cache (~/.cache/huggingface/hub) or the downloaded folder here, and pass the folder."
    )
