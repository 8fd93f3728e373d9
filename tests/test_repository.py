"""The repository stands alone: code and docs point at nothing outside it."""

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
