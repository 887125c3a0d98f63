"""The documentation site builds clean, covers the whole public API, and fails on broken links.

The site is ``docs/`` built by Sphinx with MyST and Furo (``docs/conf.py``), warnings as
errors, as ``.ci/run`` builds it. One build per test session (a module fixture, in a
temporary directory); a second, tiny one checks that a broken link fails a build.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGES = ("interlock.actors", "interlock.layers", "interlock.dsl")
BUILD_TIMEOUT = 300


def sphinx(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", *extra, str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = sphinx(DOCS, out)
    assert result.returncode == 0, f"the docs site does not build clean:\n{result.stdout}\n{result.stderr}"
    return out


def public_modules() -> list[str]:
    """Every public module of the three packages (and their public subpackages) that has ``__all__``."""
    found = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        found.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            if any(part.startswith("_") for part in info.name.split(".")):
                continue
            if "management" in info.name.split(".") or info.name.endswith(".apps"):
                continue  # Django's plumbing (manage.py commands, the AppConfig), documented in django.md
            module = importlib.import_module(info.name)
            if hasattr(module, "__all__"):
                found.append(info.name)
    return found


def inventory(site: Path) -> set[str]:
    """The names in the site's ``objects.inv``."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    text = zlib.decompress(data[header_end:]).decode("utf-8")
    return {line.split(" ", 1)[0] for line in text.splitlines() if line}


def test_every_public_name_has_a_reference_entry(site: Path) -> None:
    names = inventory(site)
    missing = [
        f"{module}.{name}"
        for module in public_modules()
        for name in importlib.import_module(module).__all__
        if f"{module}.{name}" not in names
    ]
    assert missing == [], f"not in the API reference (add them to docs/api/): {missing}"


def test_every_public_module_has_a_page() -> None:
    pages = {path.stem for path in (DOCS / "api").glob("*.md")}
    missing = [module for module in public_modules() if module.removeprefix("interlock.") not in pages]
    assert missing == [], f"no docs/api/<module>.md page (and toctree entry) for {missing}"


def test_every_page_is_in_the_site(site: Path) -> None:
    for page in DOCS.glob("*.md"):
        assert (site / f"{page.stem}.html").is_file(), page.name


def test_the_diagrams_are_drawn_as_svg(site: Path) -> None:
    """Every ``mermaid`` block of the pages is a drawing on the site, none left as code.

    A block is drawn as inline SVG, or, where the page shows the class's picture from
    ``docs/diagrams/`` already, folded away under it.
    """
    for page in DOCS.glob("*.md"):
        blocks = page.read_text(encoding="utf-8").count("```mermaid")
        if not blocks:
            continue
        html = (site / f"{page.stem}.html").read_text(encoding="utf-8")
        drawn = html.count('<figure class="interlock-diagram"><svg')
        folded = re.findall(r"<details><summary>The Mermaid text</summary>.*?</details>", html, re.DOTALL)
        assert drawn + len(folded) == blocks, page.name
        for fold in folded:
            html = html.replace(fold, "")
        assert "stateDiagram-v2" not in html, f"{page.name}: a diagram is left as Mermaid text"
        if folded:
            assert '<img alt="The state diagram of' in html, f"{page.name}: a folded diagram without its picture"


def test_the_api_reference_shows_docstrings(site: Path) -> None:
    html = (site / "api" / "actors.html").read_text(encoding="utf-8")
    assert 'id="interlock.actors.WebsocketActor"' in html
    assert "An actor for one WebSocket connection." in html
    assert ".. py:" not in html  # reST rendered, not shown as Markdown text


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """A relative link to a missing page, or to a missing heading, is a build error."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text("# Home\n\n```{toctree}\npage\n```\n", encoding="utf-8")
    (source / "page.md").write_text(
        "# Page\n\nSee [the missing page](missing.md) and [a missing heading](index.md#nowhere).\n",
        encoding="utf-8",
    )
    result = sphinx(source, tmp_path / "out", "-c", str(DOCS))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert re.search(r"page\.md:\d+: WARNING: .*missing", output), output
    assert "nowhere" in output, output


def test_a_working_link_builds(tmp_path: Path) -> None:
    """The same small site with its links mended builds clean (the failure above is the links')."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text("# Home\n\n```{toctree}\npage\n```\n", encoding="utf-8")
    (source / "page.md").write_text("# Page\n\nBack [home](index.md#home).\n", encoding="utf-8")
    result = sphinx(source, tmp_path / "out", "-c", str(DOCS))
    assert result.returncode == 0, result.stdout + result.stderr
