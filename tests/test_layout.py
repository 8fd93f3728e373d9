"""The package's layout: docs/layout.md is what the code gives, there are no import cycles, modules stay short."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("layout", ROOT / "docs" / "layout.py")
layout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layout)


def test_layout_page_is_current():
    assert (ROOT / "docs" / "layout.md").read_text() == layout.page(), "run: python docs/layout.py"


def test_no_import_cycles_including_imports_inside_functions():
    assert layout.cycles(layout.import_graph()) == []


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert layout.cycles(graph) == [["a", "b", "c", "a"]]


def test_model_math_imports_no_preprocessing_tools_or_command_line():
    graph = layout.import_graph()
    for name, targets in graph.items():
        if layout.group(name) in ("model", "checkpoint", "backend"):
            assert not {layout.group(t) for t in targets} & {"preprocess", "tasks", "porting", "cli", "bench"}, name


# Subpackages from the bottom up: each imports only from layers below it (the package root re-exports, and
# gives its __version__ to everyone, so it is left out).
LAYERS = ({"errors", "backend"}, {"checkpoint"}, {"model", "preprocess", "demo"}, {"tasks"}, {"train"}, {"porting"},
          {"cli", "bench"}, {"__main__"})  # fmt: skip


def layer_of(group):
    return next(i for i, groups in enumerate(LAYERS) if group in groups)


def test_each_subpackage_imports_only_from_layers_below_it():
    for a, b in layout.group_edges(layout.import_graph()):
        if b != "siglip2_ref":
            assert layer_of(b) < layer_of(a), f"{a} imports {b}, which is not below it"


def test_every_subpackage_has_a_layer():
    groups = {layout.group(name) for name in layout.modules()} - {"siglip2_ref"}
    assert all(any(g in layer for layer in LAYERS) for g in groups), groups


def test_long_modules_say_why():
    for name, path in layout.modules().items():
        lines = path.read_text()
        if len(lines.splitlines()) > 400:
            assert "Long (" in lines.split('"""')[1], f"{path} is over 400 lines and its docstring does not say why"
