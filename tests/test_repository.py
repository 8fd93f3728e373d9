"""The repository stands alone: code and docs point at nothing outside it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ("SPEC §", "../shared", "shared/SPEC", "shared/API", "shared/STYLE")


def repository_texts():
    for pattern in ("siglip2_ref/**/*.py", "siglip2_ref/**/*.md", "docs/*.md", "tests/**/*.py", "golden/*.py",
                    "golden/**/*.md", "benchmarks/*.py", "README.md"):  # fmt: skip
        yield from ROOT.glob(pattern)


def test_nothing_points_outside_the_repository():
    me = Path(__file__).resolve()
    bad = [f"{p.relative_to(ROOT)}: {word!r}" for p in repository_texts() if p.resolve() != me
           for word in OUTSIDE if word in p.read_text(encoding="utf-8")]  # fmt: skip
    assert not bad, bad


PATH_IN_TEXT = re.compile(r"\b((?:siglip2_ref|docs|tests|golden|benchmarks)/[A-Za-z0-9_./-]*[A-Za-z0-9_])")


def test_every_repository_path_the_docs_name_exists():
    """A moved module leaves no stale path to its old place behind in README, docs/ or a docstring."""
    stale = []
    for p in repository_texts():
        text = p.read_text(encoding="utf-8")
        for match in PATH_IN_TEXT.finditer(text):
            path = match.group(1)
            if "transformers" in text[max(0, match.start() - 15) : match.start()]:
                continue  # a file of transformers' own repository ("transformers tests/models/...")
            if not any(ROOT.glob(path + "*")):  # a path, or a file stem named without its suffix (float_arrays.*)
                stale.append(f"{p.relative_to(ROOT)}: {path}")
    assert not stale, stale
