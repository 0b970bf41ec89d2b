"""Every `>>>` example of README.md's Python, Rules and Notebooks sections runs as written."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def test_readme_examples() -> None:
    """The Python and Rules sections, in order, sharing their names as a reader's session does."""
    globs: dict[str, object] = {}
    for title in ["Python", "Rules and exclusions"]:
        blocks = re.findall(r"```python\n(.*?)```", section(title), re.S)
        assert blocks, title
        for block in blocks:
            test = doctest.DocTestParser().get_doctest(block, globs, f"README {title}", str(README), 0)
            runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
            runner.run(test, clear_globs=False)
            assert runner.failures == 0, f"{runner.failures} README example(s) failed in '{title}'"
            globs = test.globs


def test_readme_commands_match_ci() -> None:
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci in README.read_text(encoding="utf-8")
