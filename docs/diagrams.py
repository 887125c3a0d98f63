"""Regenerate the state diagrams embedded in the README and docs, or check they are fresh.

Every Markdown file may hold blocks like::

    <!-- diagram: statechat:StateChat -->
    ```mermaid
    ...generated...
    ```
    <!-- /diagram -->

``python docs/diagrams.py`` rewrites each block from the actor class it names
(importing ``examples/`` modules by name); ``python docs/diagrams.py --check`` exits 1
and names the stale blocks instead (the test suite runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?P<open><!-- diagram: (?P<target>[\w.]+:[\w.]+) -->\n)```mermaid\n.*?```\n(?P<close><!-- /diagram -->)",
    re.DOTALL,
)


def render(target: str) -> str:
    """The Mermaid diagram of ``module:Class``."""
    if str(ROOT / "examples") not in sys.path:
        sys.path.insert(0, str(ROOT / "examples"))
    from interlock.actors._cli import load_actor_class  # noqa: PLC0415 - after sys.path is set

    return load_actor_class(target).diagram("mermaid")


def refresh(text: str) -> str:
    """*text* with every diagram block regenerated."""
    return BLOCK.sub(
        lambda m: f"{m['open']}```mermaid\n{render(m['target'])}```\n{m['close']}",
        text,
    )


def main() -> int:
    """Rewrite the blocks, or with ``--check`` report stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale diagrams, change nothing")
    args = parser.parse_args()
    stale = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        fresh = refresh(text)
        if fresh != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
    if args.check and stale:
        print("stale diagrams in: " + ", ".join(map(str, stale)) + "; run python docs/diagrams.py")  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
