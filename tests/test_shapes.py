"""One shape alphabet (docs/shapes.md) for the whole package: every upper-case letter in a shape comment is in it,
and no module declares letters of its own."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE_ROW = re.compile(r"^\| ([^|]+?) \| ([^|]+?) \|$", re.M)
SHAPE = re.compile(r"(?:#|->)\s*[^\[\n]*?(\[[A-Z0-9][^\]\n]*\])")  # `# [B, N, D]`, `-> [B, 1, 1, M]`
UPPER_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*\b")


def alphabet():
    """The upper-case names docs/shapes.md defines (its table's first column)."""
    names = set()
    for letters, _ in TABLE_ROW.findall((ROOT / "docs" / "shapes.md").read_text()):
        names |= {n for n in re.split(r"[ ,]+", letters) if n[:1].isupper()}
    return names


def shape_names(text):
    """(line number, name) of every upper-case name inside a shape comment of `text`."""
    for number, line in enumerate(text.splitlines(), 1):
        for shape in SHAPE.findall(line):
            for name in UPPER_NAME.findall(shape):
                yield number, name


def modules():
    return sorted((ROOT / "siglip2_ref").rglob("*.py"))


def test_the_table_defines_the_letters_the_code_relies_on():
    assert {"B", "I", "T", "N", "D", "H", "K", "F", "P", "G", "V", "C"} <= alphabet()


def test_every_upper_case_name_in_a_shape_comment_is_in_the_alphabet():
    known = alphabet()
    unknown = [f"{p.relative_to(ROOT)}:{n}: {name}" for p in modules() for n, name in shape_names(p.read_text())
               if name not in known]  # fmt: skip
    assert not unknown, unknown


def test_the_checker_sees_an_unknown_letter():
    assert [name for _, name in shape_names("x = y  # [B, Z, D]")] == ["B", "Z", "D"]
    assert "Z" not in alphabet()


def test_no_module_declares_an_alphabet_of_its_own():
    local = [str(p.relative_to(ROOT)) for p in modules() if "Shape alphabet:" in p.read_text()]
    assert not local, f"{local}: point at docs/shapes.md instead of declaring letters"
