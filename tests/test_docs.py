"""The documentation's code runs: docs that cannot rot.

Every ```` ```python ```` block of ``README.md`` and ``docs/*.md`` must compile, and
every block that is not a fragment must run, each in a fresh interpreter. Comment
lines right above a fence mark a block:

``<!-- no-run -->``
    A fragment (a method body, a host-framework snippet): compiled, never run.
``<!-- excerpt: PATH -->``
    Copied from ``PATH`` (relative to the repository root): it must appear there
    verbatim, so the tutorial shows what ``examples/chat.py`` really says.
``<!-- serves: NAME -->``
    A module whose ``NAME`` is an ASGI app serving a WebSocket echo at ``/``: saved
    as ``module.py``, it is served with ``uvicorn module:app`` (and
    ``hypercorn -k trio``) with their default lifespan setting, and must echo a frame
    and log no error.

Blocks run from an empty temporary directory with ``examples/`` importable, as they
would next to ``examples/chat.py``, under ``-W error`` and a timeout, once with
``anyio.run`` on asyncio and once on trio. The lifecycle
table of ``docs/actors.md`` is checked against :data:`interlock.dsl.LIFECYCLE`, and
relative links between the docs must lead to files that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest
from interlock.dsl import LIFECYCLE, IllegalTransition

from tests.support.servers import serve
from tests.support.wsclient import WSClient

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SOURCES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
RUN_TIMEOUT = 60.0

_FENCE_OPEN = re.compile(r"```python\s*")
_FENCE_CLOSE = re.compile(r"```\s*")
_MARKER = re.compile(r"<!--\s*(?P<text>.*?)\s*-->")
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@attrs.frozen
class Block:
    """One ```` ```python ```` block: where it is, what it says, how it is marked."""

    path: Path
    line: int
    source: str
    markers: tuple[str, ...]

    @property
    def ident(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return "no-run" not in self.markers

    @property
    def served_app(self) -> str | None:
        for marker in self.markers:
            if marker.startswith("serves:"):
                return marker.removeprefix("serves:").strip()
        return None

    @property
    def excerpt_of(self) -> Path | None:
        for marker in self.markers:
            if marker.startswith("excerpt:"):
                return ROOT / marker.removeprefix("excerpt:").strip()
        return None


def _markers(lines: list[str], fence: int) -> tuple[str, ...]:
    """The ``<!-- ... -->`` lines directly above line index *fence*."""
    found: list[str] = []
    index = fence - 1
    while index >= 0:
        match = _MARKER.fullmatch(lines[index].strip())
        if match is None:
            break
        found.append(match["text"])
        index -= 1
    return tuple(reversed(found))


def extract_blocks(path: Path) -> list[Block]:
    """Every top-level ```` ```python ```` block of the Markdown file *path*."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if not _FENCE_OPEN.fullmatch(lines[index]):
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and not _FENCE_CLOSE.fullmatch(lines[index]):
            body.append(lines[index])
            index += 1
        if index == len(lines):
            msg = f"{path}:{start + 1}: the ```python block is never closed"
            raise AssertionError(msg)
        blocks.append(Block(path, start + 1, "\n".join(body) + "\n", _markers(lines, start)))
        index += 1
    return blocks


BLOCKS = [block for source in SOURCES for block in extract_blocks(source)]


def _params(blocks: list[Block]) -> list[Any]:
    return [pytest.param(block, id=block.ident) for block in blocks]


def test_docs_have_code() -> None:
    """The extraction finds the blocks (a broken fence regex would silently pass everything)."""
    assert (DOCS / "tutorial.md").exists()
    assert len(BLOCKS) >= 20
    assert any(not block.runs for block in BLOCKS)
    assert any(block.excerpt_of is not None for block in BLOCKS)


@pytest.mark.parametrize("block", _params(BLOCKS))
def test_block_compiles(block: Block) -> None:
    """Every block, fragment or not, is valid Python (a method excerpt once dedented)."""
    compile(textwrap.dedent(block.source), block.ident, "exec")


# Runs a block as __main__ with anyio.run() defaulting to the backend named in argv[1].
_RUNNER = """
import functools, runpy, sys
import anyio
anyio.run = functools.partial(anyio.run, backend=sys.argv[1])
runpy.run_path(sys.argv[2], run_name="__main__")
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("block", _params([b for b in BLOCKS if b.runs]))
def test_block_runs(block: Block, backend: str, tmp_path: Path) -> None:
    """A complete block runs to the end in a fresh interpreter, without warnings, on both backends."""
    script = tmp_path / "block.py"
    script.write_text(block.source, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "examples"), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _RUNNER, backend, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    report = f"{block.ident} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    assert "was never awaited" not in result.stderr, report


@pytest.mark.e2e
@pytest.mark.parametrize("block", _params([b for b in BLOCKS if b.served_app is not None]))
async def test_served_block_answers_under_a_real_server(block: Block, anyio_backend: str, tmp_path: Path) -> None:
    """``uvicorn module:app`` (``hypercorn -k trio`` on trio) on the block, as pasted, serves it."""
    (tmp_path / "module.py").write_text(block.source, encoding="utf-8")
    with serve(f"module:{block.served_app}", backend=anyio_backend, app_dir=str(tmp_path)) as server:
        async with await WSClient.connect(server.host, server.port, "/") as ws:
            await ws.send_text("hello")
            assert await ws.receive_text() == "hello"
        logs = server.logs()
    assert "ERROR" not in logs, logs
    assert "Traceback" not in logs, logs


def test_some_blocks_are_served() -> None:
    assert any(block.served_app is not None for block in BLOCKS)


@pytest.mark.parametrize("block", _params([b for b in BLOCKS if b.excerpt_of is not None]))
def test_excerpt_matches_its_source(block: Block) -> None:
    """A block marked as an excerpt appears verbatim in the file it names."""
    assert block.excerpt_of is not None
    assert block.excerpt_of.is_file(), f"{block.ident}: no such file {block.excerpt_of}"
    source = block.excerpt_of.read_text(encoding="utf-8")
    assert block.source in source, f"{block.ident} is no longer a verbatim excerpt of {block.excerpt_of}"


def _lifecycle_table() -> tuple[list[str], dict[str, list[str]]]:
    """The Markdown table after ``<!-- lifecycle-table -->`` in docs/actors.md."""
    lines = (DOCS / "actors.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("<!-- lifecycle-table -->") + 1
    rows: list[list[str]] = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
    header, _rule, *body = rows
    return header[1:], {row[0]: row[1:] for row in body}


def _expected_cell(state: str, trigger: str) -> str:
    """What the table should say: ``error``, ``ignored``, ``stays`` or ``→ target``."""
    try:
        target = LIFECYCLE.next(state, trigger)
    except IllegalTransition:
        return "error"
    if (state, trigger) in LIFECYCLE.ignored:
        return "ignored"
    return "stays" if target == state else f"→ {target}"


def test_lifecycle_table_matches_the_code() -> None:
    """Each cell of the documented table says what ``LIFECYCLE.next`` does."""
    operations, rows = _lifecycle_table()
    assert sorted(rows) == sorted(LIFECYCLE.states)
    assert set(operations) == {trigger for _, trigger in LIFECYCLE.table}
    for state, cells in rows.items():
        for trigger, cell in zip(operations, cells, strict=True):
            assert cell == _expected_cell(state, trigger), f"state {state!r}, operation {trigger!r}"


def _slug(heading: str) -> str:
    """The anchor GitHub (and MyST's ``heading_anchors``) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """The anchors of the headings of the Markdown file *path* (outside code fences)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        heading = re.fullmatch(r"#{1,6} +(?P<text>.+?) *#*", line)
        if fenced or heading is None:
            continue
        slug = _slug(heading["text"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize("source", [pytest.param(p, id=p.name) for p in sorted(DOCS.glob("*.md"))])
def test_relative_links_resolve(source: Path) -> None:
    """Links from a doc to a file of the repository, or to a heading in a doc, lead somewhere."""
    for match in _LINK.finditer(source.read_text(encoding="utf-8")):
        link = match["target"]
        if "://" in link or link.startswith("mailto:"):
            continue
        target, _, anchor = link.partition("#")
        path = (source.parent / target) if target else source
        assert path.exists(), f"{source.name}: broken link {link!r}"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{source.name}: no heading for {link!r} in {path.name}"
