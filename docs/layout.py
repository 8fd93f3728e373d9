"""Writes docs/layout.md from the code: every module, its size and first docstring line, and the import graph
between subpackages (a Mermaid diagram). `python docs/layout.py` rewrites it; tests/test_layout.py checks that
the committed page is what the code gives and that no import cycle exists.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "siglip2_ref"


def module_name(path):  # siglip2_ref/model/layers.py -> siglip2_ref.model.layers
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    """{module name: path} of every Python module in the package except the demo data."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "demo" not in p.parts or p.name == "shapes.py"}


def imported(name, path, known):
    """The package modules that `name` imports anywhere (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != name}


def import_graph():
    """{module: set of package modules it imports}."""
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def group(name):  # siglip2_ref.model.layers -> model; siglip2_ref.backend -> backend
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "siglip2_ref"


def cycles(graph):
    """Every import cycle, as a list of modules (empty when the graph is a DAG)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def group_edges(graph):
    """{(from group, to group)} between different subpackages; the package root's re-exports are left out."""
    return sorted({(group(a), group(b)) for a, targets in graph.items() for b in targets
                   if group(a) != group(b) and group(a) != "siglip2_ref"})  # fmt: skip


def summary(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0].replace("|", "\\|") if doc.strip() else ""


def page():
    graph, known = import_graph(), modules()
    lines = ["# The layout of the package", "",
             "Generated from the code by `python docs/layout.py` (tests/test_layout.py keeps it current). Data flows",
             "one way: files on disk (`checkpoint/`) -> the arrays the model takes (`preprocess/`) -> the towers and",
             "the two-tower head (`model/`) -> what users do with them (`tasks/`) and what porters check (`porting/`)",
             "-> the command line (`cli/`). An arrow means \"imports\"; there are no cycles.", "",
             "```mermaid", "graph LR"]  # fmt: skip
    lines += [f"  {a} --> {b}" for a, b in group_edges(graph)]
    lines += ["```", "", "| module | lines | what is in it |", "|---|---:|---|"]
    for name, path in known.items():
        lines.append(f"| `{path.relative_to(PACKAGE)}` | {len(path.read_text().splitlines())} | {summary(path)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (ROOT / "docs" / "layout.md").write_text(page())
    found = cycles(import_graph())
    print("\n".join(" -> ".join(c) for c in found) or "no import cycles", file=sys.stderr)
