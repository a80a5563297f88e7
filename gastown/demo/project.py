"""The demo's sample project (a tiny calculator with a real unittest suite) and its six
issues: some that simply land, two that edit the same README lines (one of them hits a
merge conflict and is fixed), one whose first attempt breaks the tests, and one whose
first attempt passes the tests but is stopped by the code review (and roasted)."""

from __future__ import annotations

from dataclasses import dataclass

FILES = {
    "README.md": "# calc\n\nA tiny calculator, built by gastown demo agents.\n\n## Operations\n\n- add\n",
    "calc/__init__.py": '"""A tiny calculator."""\n',
    "calc/core.py": 'def add(a, b):\n    """a + b"""\n    return a + b\n',
    "tests/__init__.py": "",
    "tests/test_core.py": (
        "import unittest\n\nfrom calc.core import add\n\n\n"
        "class AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    ),
}

GATE = "-m unittest discover -s tests -t . -q"

README_BOTH = "# calc\n\nA tiny calculator, built by gastown demo agents.\n\n## Operations\n\n- add\n- subtract\n- multiply\n"


def _test(module: str, func: str, call: str, expected: str) -> str:
    return (
        f"import unittest\n\nfrom calc.{module} import {func}\n\n\n"
        f"class {func.title()}Test(unittest.TestCase):\n"
        f"    def test_{func}(self):\n        self.assertEqual({call}, {expected})\n"
    )


@dataclass(frozen=True)
class DemoIssue:
    title: str
    body: str
    priority: int


def _block(command: str, content: str = "") -> str:
    return f"~~~demo\n{command}\n{content}~~~\n"


ISSUES = (
    DemoIssue(
        "Add subtract()",
        "Add a `subtract(a, b)` function with a test.\n\n"
        + _block("write calc/subtract.py", 'def subtract(a, b):\n    """a - b"""\n    return a - b\n')
        + _block("write tests/test_subtract.py", _test("subtract", "subtract", "subtract(7, 2)", "5")),
        1,
    ),
    DemoIssue(
        "Add multiply() (the first attempt passes the tests but not the review)",
        "Add a `multiply(a, b)` function with a test. The demo agent's first attempt evaluates a\n"
        "formatted string: the tests pass, but the code review stops it (eval on input is critical),\n"
        "roasts it, and sends it back; the fix lands.\n\n"
        + _block("write calc/multiply.py", 'def multiply(a, b):\n    """a * b"""\n    return eval(f"{a} * {b}")\n')
        + _block("write calc/multiply.py @fix", 'def multiply(a, b):\n    """a * b"""\n    return a * b\n')
        + _block("write tests/test_multiply.py", _test("multiply", "multiply", "multiply(4, 3)", "12")),
        1,
    ),
    DemoIssue(
        "Add divide() (the first attempt has a bug)",
        "Add `divide(a, b)`. The demo agent gets it wrong the first time: the merge queue's\n"
        "tests catch it, the issue goes back to a polecat, and the fix lands.\n\n"
        + _block("write calc/divide.py", 'def divide(a, b):\n    """a / b"""\n    return a * b\n')
        + _block("write calc/divide.py @fix", 'def divide(a, b):\n    """a / b"""\n    return a / b\n')
        + _block("write tests/test_divide.py", _test("divide", "divide", "divide(6, 3)", "2")),
        2,
    ),
    DemoIssue(
        "List subtract in the README",
        "Add subtract to the README's list of operations.\n\n"
        + _block("rebase @fix")
        + _block(
            "write README.md",
            "# calc\n\nA tiny calculator, built by gastown demo agents.\n\n## Operations\n\n- add\n- subtract\n",
        )
        + _block("write README.md @fix", README_BOTH),
        2,
    ),
    DemoIssue(
        "List multiply in the README",
        "Add multiply to the README's list of operations. It edits the same lines as the\n"
        "subtract issue, so whichever lands second meets a merge conflict and is redone.\n\n"
        + _block("rebase @fix")
        + _block(
            "write README.md",
            "# calc\n\nA tiny calculator, built by gastown demo agents.\n\n## Operations\n\n- add\n- multiply\n",
        )
        + _block("write README.md @fix", README_BOTH),
        3,
    ),
    DemoIssue(
        "Start a changelog",
        "Add a CHANGELOG.md.\n\n" + _block("write CHANGELOG.md", "# Changelog\n\n- calc: add, subtract, multiply, divide\n"),
        3,
    ),
)
