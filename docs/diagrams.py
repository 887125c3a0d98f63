"""Regenerate the state diagrams embedded in the README and docs, or check they are fresh.

Every Markdown file may hold Mermaid blocks and SVG pictures like::

    <!-- diagram: statechat:StateChat -->
    ```mermaid
    ...generated...
    ```
    <!-- /diagram -->

    <!-- diagram-svg: statechat:StateChat -->
    ![...](diagrams/statechat.StateChat.svg)
    <!-- /diagram-svg -->

``python docs/diagrams.py`` rewrites each block from the actor class it names
(importing ``examples/`` modules by name) and writes each picture to ``docs/diagrams/``
(Graphviz through pygraphviz: the ``svg`` extra); ``python docs/diagrams.py --check``
exits 1 and names the stale blocks and pictures instead (the test suite runs it). A
picture is fresh when it was drawn from the DOT text the code draws today: the SVG
records that text's SHA-256, so the check needs no Graphviz and does not depend on its
version.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PICTURES = ROOT / "docs" / "diagrams"
BLOCK = re.compile(
    r"(?P<open><!-- diagram: (?P<target>[\w.]+:[\w.]+) -->\n)```mermaid\n.*?```\n(?P<close><!-- /diagram -->)",
    re.DOTALL,
)
SVG_BLOCK = re.compile(
    r"(?P<open><!-- diagram-svg: (?P<target>[\w.]+:[\w.]+) -->\n)(?:.*?\n)??(?P<close><!-- /diagram-svg -->)",
    re.DOTALL,
)
STAMP = "<!-- drawn by docs/diagrams.py from DOT text with SHA-256 {digest} -->"


def render(target: str, fmt: str = "mermaid") -> str:
    """The diagram of ``module:Class`` as ``mermaid``, ``dot`` or ``svg`` text."""
    if str(ROOT / "examples") not in sys.path:
        sys.path.insert(0, str(ROOT / "examples"))
    from interlock.actors._cli import load_actor_class  # noqa: PLC0415 - after sys.path is set

    return load_actor_class(target).diagram(fmt)


def picture(target: str) -> Path:
    """Where the SVG picture of ``module:Class`` is kept."""
    return PICTURES / f"{target.replace(':', '.')}.svg"


def stamp(target: str) -> str:
    """The line an up-to-date picture of *target* carries."""
    return STAMP.format(digest=hashlib.sha256(render(target, "dot").encode("utf-8")).hexdigest())


def stale_picture(target: str) -> bool:
    """Whether the picture of *target* is missing or was drawn from other DOT text."""
    path = picture(target)
    return not path.exists() or stamp(target) not in path.read_text(encoding="utf-8")


def draw_picture(target: str) -> None:
    """Write the SVG picture of *target*, stamped with its DOT text's digest."""
    svg = render(target, "svg")
    head, sep, rest = svg.partition("?>\n")  # after the XML declaration, where a comment may go
    text = f"{head}{sep}{stamp(target)}\n{rest}" if sep else f"{stamp(target)}\n{svg}"
    PICTURES.mkdir(exist_ok=True)
    picture(target).write_text(text, encoding="utf-8")


def picture_block(path: Path, target: str) -> str:
    """The Markdown that shows the picture of *target* in the page at *path*."""
    owner = target.rsplit(":", 1)[1]
    relative = Path(os.path.relpath(picture(target), path.parent)).as_posix()
    return f"![The state diagram of {owner}, drawn by Graphviz]({relative})"


def refresh(text: str, path: Path = ROOT / "README.md") -> str:
    """*text* (the page at *path*) with every diagram block regenerated."""
    text = BLOCK.sub(
        lambda m: f"{m['open']}```mermaid\n{render(m['target'])}```\n{m['close']}",
        text,
    )
    return SVG_BLOCK.sub(lambda m: f"{m['open']}{picture_block(path, m['target'])}\n{m['close']}", text)


def pictures(text: str) -> list[str]:
    """The targets whose pictures *text* shows."""
    return [m["target"] for m in SVG_BLOCK.finditer(text)]


def main() -> int:
    """Rewrite the blocks, or with ``--check`` report stale ones."""
    from interlock.dsl import DiagramError  # noqa: PLC0415 - as render() imports interlock: when run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale diagrams, change nothing")
    args = parser.parse_args()
    stale = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        fresh = refresh(text, path)
        if fresh != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
        for target in pictures(fresh):
            if picture(target).relative_to(ROOT) not in stale and stale_picture(target):
                stale.append(picture(target).relative_to(ROOT))
                if not args.check:
                    try:
                        draw_picture(target)
                    except DiagramError as exc:  # no Graphviz: say so, leave the old picture
                        print(f"cannot draw {picture(target).relative_to(ROOT)}: {exc}", file=sys.stderr)  # noqa: T201
                        return 1
    if args.check and stale:
        print("stale diagrams in: " + ", ".join(map(str, stale)) + "; run python docs/diagrams.py")  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
