"""README's Python snippet runs as written and prints what its comments say."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def python_snippet():
    return re.search(r"## From Python\n.*?```python\n(.*?)```", README, re.S).group(1)


def test_readme_python_snippet_runs_on_the_demo_model():
    namespace = {}
    exec(compile(python_snippet(), "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    s2 = namespace["s2"]
    ranked = s2.zero_shot(namespace["model"], namespace["processor"], namespace["EXAMPLE_IMAGE"], ["red circle", "blue star"])
    assert [label for label, _ in ranked] == ["red circle", "blue star"] and f"{ranked[0][1]:.3f}" in python_snippet()
    assert namespace["embeds"].shape == (1, namespace["model"].config.vision.hidden_size)
