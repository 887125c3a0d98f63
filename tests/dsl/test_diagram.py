"""Diagrams from the compiled spec: Mermaid, DOT, SVG, live highlighting, and the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from interlock.actors import JsonStateActor, ProtocolTypeRouter, WebsocketActor
from interlock.actors._cli import main
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import DiagramError, MachineSpec, State, Timeout, compile_machine, on, render
from interlock.layers import InMemoryChannelLayer


class Lobby(JsonStateActor):
    """A bit of everything a diagram shows."""

    idle_timeout = 300
    authenticating = State(initial=True, timeout=30, defer=["chat.message"])
    lobby = State(tags=["authenticated"])
    in_room = State(tags=["member"], invoke=["fetch_history"])
    waiting_for_turn = State(parent=in_room)
    playing = State(parent=in_room, terminal=True)

    instances: ClassVar[list[Any]] = []

    async def connect(self) -> None:
        self.instances.append(self)
        await self.accept()

    def room_ok(self, event: dict[str, Any]) -> bool:
        return bool(event.get("room"))

    @on.client("login", source=authenticating, target=lobby, guard=lambda self, event: event.get("token") == "ok")
    async def login(self, event: dict[str, Any]) -> None: ...

    @on.client("login", source=authenticating)
    async def login_refused(self, event: dict[str, Any]) -> None: ...

    @on.timeout(authenticating)
    async def too_slow(self, event: Timeout) -> None:
        await self.close(4001)

    @on.client("join", source=lobby, target=in_room, guard="room_ok")
    async def join(self, event: dict[str, Any]) -> None: ...

    @on.client("play", source=waiting_for_turn, target=playing)
    async def play(self, event: dict[str, Any]) -> None: ...

    @on.client("leave", source=in_room, target=lobby)
    async def leave(self, event: dict[str, Any]) -> None: ...

    @on.message("chat.message", source=[lobby, in_room])
    async def chat(self, event: dict[str, Any]) -> None: ...

    @on.idle()
    async def idle(self, event: Timeout) -> None:
        await self.close(4000)

    @on.timer("nudge", source=lobby)
    async def nudge(self, event: Timeout) -> None: ...

    async def fetch_history(self) -> list[str]:
        return []

    @on.done("fetch_history", source=in_room)
    async def history(self, event: list[str]) -> None: ...

    @on.error("fetch_history", source=in_room, target=lobby)
    async def no_history(self, event: Any) -> None: ...


EDGE = re.compile(r"^\s*(\S+) --> (\S+)(?:: (.*))?$")
ALIAS = re.compile(r'^\s*state "([^"]+)" as (\S+)$')


def mermaid_graph(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """The state names by id and the edges (source name, target name, edge label) of Mermaid text.

    A name is a label's first line; an edge whose label has several lines (the merged
    self-loops of one state) counts once per line.
    """
    labels = {name: name for name in ("connecting", "open", "closing", "closed", "[*]")}
    edges: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        alias = ALIAS.match(line)
        if alias:
            labels[alias.group(2)] = alias.group(1).split(" · ")[0]
            continue
        edge = EDGE.match(line)
        if edge:
            source, target, label = edge.groups()
            edges.extend((labels[source], labels[target], part) for part in (label or "").split("<br/>"))
    return labels, edges


def test_mermaid_header_states_and_structure() -> None:
    text = Lobby.diagram("mermaid")
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert text.endswith("\n")
    labels, _ = mermaid_graph(text)
    for name in ("authenticating", "lobby", "in_room", "waiting_for_turn", "playing"):
        assert name in labels.values()
    assert text.count("{") == text.count("}")
    assert "    state open {" in lines
    room_id = next(key for key, value in labels.items() if value == "in_room")
    assert f'        state "in_room · invokes fetch_history · tags member" as {room_id}' in lines
    assert f"        state {room_id} {{" in lines  # in_room is composite, declared in open
    # ids, not names, appear in edges: underscores in names cannot break the syntax
    for line in lines:
        edge = EDGE.match(line)
        if edge:
            assert "_" not in edge.group(1) + edge.group(2)


def test_mermaid_edges_with_guards_timeouts_and_internal() -> None:
    _, edges = mermaid_graph(Lobby.diagram("mermaid"))
    assert set(edges) >= {
        ("[*]", "connecting", ""),
        ("connecting", "open", "accept"),
        ("connecting", "closing", "deny / close"),
        ("open", "closing", "close"),
        ("open", "closed", "disconnect"),
        ("closing", "closed", "disconnect"),
        ("closed", "[*]", ""),
        ("authenticating", "lobby", "login [guard]"),
        ("authenticating", "authenticating", "login (internal)"),
        ("authenticating", "authenticating", "after 30 s (internal)"),
        ("lobby", "in_room", "join [room_ok]"),
        ("waiting_for_turn", "playing", "play"),
        ("in_room", "lobby", "leave"),
        ("lobby", "lobby", "message chat.message (internal)"),
        ("in_room", "in_room", "message chat.message (internal)"),
        ("open", "open", "idle 300 s (internal)"),
        ("lobby", "lobby", "timer nudge (internal)"),
        ("in_room", "in_room", "done fetch_history (internal)"),
        ("in_room", "lobby", "error fetch_history"),
        ("[*]", "authenticating", ""),
        ("[*]", "waiting_for_turn", ""),
    }
    # one edge per compiled transition, plus the lifecycle's
    transitions = [e for e in edges if e[0] not in ("connecting", "closing", "closed", "[*]")]
    lifecycle = [e for e in transitions if e[2] in ("close", "disconnect")]
    assert len(transitions) - len(lifecycle) == len(Lobby.machine.transitions)


def test_mermaid_details_show_timeouts_defers_tasks_tags() -> None:
    text = Lobby.diagram("mermaid")
    spec = Lobby.machine
    lines = text.splitlines()
    ids = {path: mermaid_id(spec, path) for path in spec.states}
    # a leaf's details are its description lines, a composite's are lines of its label
    assert f"        {ids['open.authenticating']} : timeout after 30 s" in lines
    assert f"        {ids['open.authenticating']} : defers chat.message" in lines
    assert f"        {ids['open.lobby']} : tags authenticated" in lines
    assert f"            {ids['open.in_room.playing']} : terminal" in lines
    assert "in_room · invokes fetch_history · tags member" in text
    assert "note " not in text  # Mermaid's layout moves notes away from nested states


def test_mermaid_from_a_plain_spec() -> None:
    class Plain:
        first = State()
        second_one = State(terminal=True, timeout=1.5)

        @on.client("go", source=first, target=second_one)
        def go(self, event: Any) -> None: ...

        @on.timeout(second_one)
        def late(self, event: Timeout) -> None: ...

    text = render(compile_machine(Plain), "mermaid")
    _, edges = mermaid_graph(text)
    assert ("first", "second_one", "go") in edges
    assert ("second_one", "second_one", "after 1.5 s (internal)") in edges


def test_websocket_actor_diagram_is_the_lifecycle() -> None:
    text = WebsocketActor.diagram()
    labels, edges = mermaid_graph(text)
    assert text.startswith("stateDiagram-v2\n")
    assert set(labels) == {"connecting", "open", "closing", "closed", "[*]"}
    assert "state open {" not in text
    assert set(edges) == {
        ("[*]", "connecting", ""),
        ("connecting", "open", "accept"),
        ("connecting", "closing", "deny / close"),
        ("open", "closing", "close"),
        ("connecting", "closed", "disconnect"),
        ("open", "closed", "disconnect"),
        ("closing", "closed", "disconnect"),
        ("closed", "[*]", ""),
    }
    assert WebsocketActor.diagram("mermaid") == text


# -- DOT and SVG ----------------------------------------------------------------------------------------


def edge_text(edge: Any) -> str:
    """A DOT edge's text: its label, or its xlabel (padded with spaces) where the edge is clipped."""
    text: str = edge.attr["label"] or edge.attr["xlabel"] or ""
    return "\n".join(line.strip() for line in text.splitlines())


def test_dot_parses_with_nodes_clusters_and_edges() -> None:
    pygraphviz = pytest.importorskip("pygraphviz")
    spec = Lobby.machine
    graph = pygraphviz.AGraph(string=Lobby.diagram("dot"))
    nodes = set(graph.nodes())
    leaves = {path for path, info in spec.states.items() if not info.children}
    assert leaves | {"connecting", "closing", "closed"} <= nodes
    assert "open.in_room" not in nodes  # a cluster, with an anchor for its edges
    clusters = {sub.name: sub for sub in graph.subgraphs_iter()}
    assert set(clusters) == {"cluster_open"}
    inner = {sub.name for sub in clusters["cluster_open"].subgraphs_iter()}
    assert inner == {"cluster_open.in_room"}
    labels = [line for edge in graph.edges_iter() for line in edge_text(edge).splitlines()]
    for label in ("login [guard]", "after 30 s (internal)", "join [room_ok]", "idle 300 s (internal)", "leave"):
        assert label in labels
    # one line per compiled transition, plus the lifecycle's (two merged into "deny / close")
    assert len(labels) == len(spec.transitions) + 6
    loops = [edge for edge in graph.edges_iter() if edge[0] == edge[1]]
    assert len(loops) == len({edge[0] for edge in loops})  # one loop per state, its labels on lines
    markers = {edge[0]: edge[1] for edge in graph.edges_iter() if edge[0].endswith(".__initial")}
    assert markers == {
        "open.__initial": "open.authenticating",
        "open.in_room.__initial": "open.in_room.waiting_for_turn",
    }
    authenticating = graph.get_node("open.authenticating")
    assert authenticating.attr["label"].splitlines() == [
        "authenticating",
        "timeout after 30 s",
        "defers chat.message",
    ]
    internal = [edge for edge in graph.edges_iter() if edge_text(edge).endswith("(internal)")]
    assert internal
    assert all(edge.attr["style"] == "dashed" for edge in internal)


def test_dot_quotes_awkward_names() -> None:
    pygraphviz = pytest.importorskip("pygraphviz")

    class Awkward:
        outer = State(tags=['say "hi"'], defer=["a\\b"])
        inner = State(parent=outer)

    graph = pygraphviz.AGraph(string=render(compile_machine(Awkward), "dot"))
    cluster = next(graph.get_subgraph("cluster_open").subgraphs_iter())
    # labels are Graphviz escStrings: a backslash stays escaped until rendering
    assert cluster.graph_attr["label"].splitlines() == ["outer", "defers a\\\\b", 'tags say "hi"']


def test_mermaid_escapes_awkward_details() -> None:
    class Awkward:
        outer = State(tags=['say "hi"', "a{b}", "x;y", "#1", "<b>"])
        inner = State(parent=outer, defer=["c}d"])

    text = render(compile_machine(Awkward), "mermaid")
    label = "outer · tags #35;1, #lt;b#gt;, a#123;b#125;, say #quot;hi#quot;, x#59;y"
    assert f'        state "{label}" as s0' in text.splitlines()
    assert "            s1 : defers c#125;d" in text.splitlines()


def test_svg_renders() -> None:
    pytest.importorskip("pygraphviz")
    svg = Lobby.diagram("svg")
    assert svg.startswith("<?xml") or "<svg" in svg
    assert "<svg" in svg
    for name in ("authenticating", "waiting_for_turn", "join [room_ok]"):
        assert name in svg


def test_svg_without_pygraphviz_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    with pytest.raises(DiagramError, match=r"pip install 'interlock\[svg\]'"):
        Lobby.diagram("svg")


@pytest.mark.parametrize("fmt", ["png", "MERMAID", ""])
def test_unknown_format(fmt: str) -> None:
    with pytest.raises(DiagramError, match=f"unknown diagram format {fmt!r}; choose one of mermaid, dot, svg"):
        Lobby.diagram(fmt)
    with pytest.raises(DiagramError):
        render(Lobby.machine, fmt)


# -- a live actor's current state ---------------------------------------------------------------------------


def mermaid_id(spec: MachineSpec, path: str) -> str:
    return f"s{list(spec.states).index(path)}"


async def test_live_instance_highlights_its_nested_state() -> None:
    instances: list[Lobby] = []
    app = ProtocolTypeRouter({"websocket": Lobby.as_asgi(instances=instances)}, channel_layer=InMemoryChannelLayer())
    spec = Lobby.machine
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "login", "token": "ok"})
        await ws.send_json_to({"type": "join", "room": "r1"})
        await ws.receive_nothing(0.05)
        actor = instances[0]
        assert actor.state == "open.in_room.waiting_for_turn"
        text = actor.diagram("mermaid")
        leaf = mermaid_id(spec, "open.in_room.waiting_for_turn")
        room = mermaid_id(spec, "open.in_room")
        assert f"    class {leaf} current" in text.splitlines()
        enclosing = next(line for line in text.splitlines() if line.endswith(" enclosing") and "class " in line)
        assert set(enclosing.split()[1].split(",")) == {"open", room}
        assert "classDef current" in text
        assert "classDef" not in Lobby.diagram("mermaid")  # the class draws no highlight

        pygraphviz = pytest.importorskip("pygraphviz")
        graph = pygraphviz.AGraph(string=actor.diagram("dot"))
        node = graph.get_node("open.in_room.waiting_for_turn")
        assert node.attr["fillcolor"] == "#ffd54f"
        assert "fillcolor" not in {k for k, v in graph.get_node("open.lobby").attr.items() if v}
        outer = graph.get_subgraph("cluster_open")
        assert outer.graph_attr["color"] == "#e65100"
        assert outer.get_subgraph("cluster_open.in_room").graph_attr["color"] == "#e65100"
        await ws.disconnect()
    closed = instances[0].diagram("mermaid").splitlines()
    assert "    class closed current" in closed
    assert not [line for line in closed if line.endswith(" enclosing") and line.startswith("    class ")]


class Muting(JsonStateActor):
    """A main state and a parallel region, to draw live."""

    lobby = State()
    in_call = State(terminal=True)
    unmuted = State(region="audio")
    muted = State(region="audio")

    instances: ClassVar[list[Any]] = []

    async def connect(self) -> None:
        self.instances.append(self)
        await self.accept()

    @on.client("join", source=lobby, target=in_call)
    async def join(self, event: dict[str, Any]) -> None: ...

    @on.client("mute", source=unmuted, target=muted)
    async def mute(self, event: dict[str, Any]) -> None: ...

    @on.client("unmute", source=muted, target=unmuted)
    async def unmute(self, event: dict[str, Any]) -> None: ...


async def test_live_instance_highlights_its_state_in_each_region() -> None:
    spec = Muting.machine
    async with WebsocketCommunicator(Muting.as_asgi(), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "mute"})
        await ws.receive_nothing(0.05)
        actor = Muting.instances[-1]
        assert (actor.state, actor.regions) == ("open.lobby", {"audio": "open.audio.muted"})
        lines = actor.diagram("mermaid").splitlines()
        marked = ",".join(sorted(mermaid_id(spec, p) for p in ("open.lobby", "open.audio.muted")))
        assert f"    class {marked} current" in lines
        pygraphviz = pytest.importorskip("pygraphviz")
        graph = pygraphviz.AGraph(string=actor.diagram("dot"))
        assert graph.get_node("open.audio.muted").attr["fillcolor"] == "#ffd54f"
        assert graph.get_node("open.lobby").attr["fillcolor"] == "#ffd54f"
        assert graph.get_subgraph("cluster_open").get_subgraph("cluster_open.audio").graph_attr["color"] == "#e65100"
        await ws.disconnect()


async def test_live_plain_actor_highlights_open() -> None:
    instances: list[WebsocketActor] = []

    class Plain(WebsocketActor):
        async def connect(self) -> None:
            instances.append(self)
            await self.accept()

    async with WebsocketCommunicator(Plain.as_asgi(), "/") as ws:
        assert (await ws.connect()).accepted
        lines = instances[0].diagram().splitlines()
        assert "    class open current" in lines
        assert not [line for line in lines if line.startswith("    class ") and line.endswith(" enclosing")]
        await ws.disconnect()


# -- the CLI ------------------------------------------------------------------------------------------------


def test_cli_prints_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "interlock.actors:WebsocketActor"]) == 0
    out = capsys.readouterr().out
    assert out == WebsocketActor.diagram("mermaid")
    assert out.startswith("stateDiagram-v2\n")


@pytest.fixture
def dsl_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module on sys.path declaring a DSL actor, for the CLI to import."""
    name = f"dsl_cli_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from typing import Any
            from interlock.actors import JsonStateActor
            from interlock.dsl import State, on

            class Chat(JsonStateActor):
                lobby = State()
                in_room = State(terminal=True)

                @on.client("join", source=lobby, target=in_room, guard="ok")
                async def join(self, event: Any) -> None: ...

                def ok(self, event: Any) -> bool:
                    return True

            class NotAnActor:
                pass
            """
        )
    )
    (tmp_path / f"{name}_bad.py").write_text(
        textwrap.dedent(
            """
            from interlock.actors import JsonStateActor
            from interlock.dsl import State

            class Broken(JsonStateActor):
                lobby = State(timeout=5)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return name


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_cli_dsl_class_to_file(dsl_module: str, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"chat.{fmt}"
    assert main(["diagram", f"{dsl_module}:Chat", "--format", fmt, "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    text = out.read_text(encoding="utf-8")
    if fmt == "mermaid":
        _, edges = mermaid_graph(text)
        assert ("lobby", "in_room", "join [ok]") in edges
    else:
        assert '"open.lobby" -> "open.in_room" [label="join [ok]"];' in text


def test_cli_writes_svg(tmp_path: Path) -> None:
    pytest.importorskip("pygraphviz")
    out = tmp_path / "x.svg"
    assert main(["diagram", "interlock.actors:WebsocketActor", "--format", "svg", "-o", str(out)]) == 0
    assert "<svg" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("interlock.actors.WebsocketActor", "expected MODULE:CLASS"),
        (":WebsocketActor", "expected MODULE:CLASS"),
        ("interlock.actors:", "expected MODULE:CLASS"),
        ("no_such_module_for_interlock:Actor", "cannot import module 'no_such_module_for_interlock'"),
        ("interlock.actors:NoSuchActor", "module 'interlock.actors' has no attribute 'NoSuchActor'"),
        ("interlock.dsl:State", "not a WebsocketActor or HttpActor subclass"),
        ("interlock.actors:path", "not a WebsocketActor or HttpActor subclass"),
    ],
)
def test_cli_errors_exit_2(target: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", target]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("interlock: error: ")
    assert message in captured.err


def test_cli_errors_from_user_modules(dsl_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", f"{dsl_module}:NotAnActor"]) == 2
    assert "not a WebsocketActor or HttpActor subclass" in capsys.readouterr().err
    assert main(["diagram", f"{dsl_module}_bad:Broken"]) == 2
    err = capsys.readouterr().err
    assert "declares an invalid state machine" in err
    assert "Broken" in err
    assert "'open.lobby'" in err


def test_cli_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "x.mmd"
    assert main(["diagram", "interlock.actors:WebsocketActor", "-o", str(target)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_cli_unknown_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["diagram", "interlock.actors:WebsocketActor", "--format", "png"])
    assert info.value.code == 2
    assert "invalid choice: 'png'" in capsys.readouterr().err


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interlock.actors._cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_cli_subprocess_prints_mermaid(tmp_path: Path) -> None:
    result = run_cli("diagram", "interlock.actors:WebsocketActor", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == WebsocketActor.diagram("mermaid")
    _, edges = mermaid_graph(result.stdout)
    assert ("connecting", "open", "accept") in edges


def test_cli_subprocess_writes_files(tmp_path: Path) -> None:
    result = run_cli("diagram", "interlock.actors:WebsocketActor", "-o", "lifecycle.mmd", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert (tmp_path / "lifecycle.mmd").read_text(encoding="utf-8").startswith("stateDiagram-v2\n")
    pytest.importorskip("pygraphviz")
    result = run_cli("diagram", "interlock.actors:WebsocketActor", "--format", "svg", "-o", "x.svg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "<svg" in (tmp_path / "x.svg").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nocolon", "expected MODULE:CLASS"),
        ("no_such_module_for_interlock:X", "cannot import module"),
        ("interlock.dsl:State", "not a WebsocketActor or HttpActor subclass"),
    ],
)
def test_cli_subprocess_errors(tmp_path: Path, target: str, message: str) -> None:
    result = run_cli("diagram", target, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_subprocess_imports_from_the_working_directory(dsl_module: str, tmp_path: Path) -> None:
    result = run_cli("diagram", f"{dsl_module}:Chat", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    labels, _ = mermaid_graph(result.stdout)
    assert "in_room" in labels.values()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("interlock.actors:HttpActor", "receiving --> streaming: send_headers()"),
        ("interlock.actors:SseActor", "receiving --> streaming: send_headers()"),
        ("interlock.actors:HttpStateActor", "receiving --> serving"),
    ],
)
def test_cli_draws_http_actors(target: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", target]) == 0
    assert expected in capsys.readouterr().out
