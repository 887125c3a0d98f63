"""The diagrams' structure, read back by parsers: Mermaid's placement rules, Graphviz's clusters.

String snapshots cannot tell a state drawn inside its parent from one drawn beside it.
These tests parse the output instead: a small ``stateDiagram-v2`` parser below (the subset
the renderer writes; any other line fails the test) that also applies Mermaid's rule for
where a state lands (the last composite block that mentions it), and pygraphviz for DOT.
They run over the example chat and purpose-built machines: three levels of nesting, a
nested state that is neither initial nor has details, several self-loops on one state,
timeouts, guards, internal transitions, and edges between a composite and its own inside.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from interlock.actors import JsonStateActor
from interlock.dsl import MachineSpec, State, Timeout, Transition, on, render
from interlock.dsl._diagram_scene import edge_label
from interlock.dsl._lifecycle import STATES as LIFECYCLE_STATES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# -- machines ---------------------------------------------------------------------------------------


class Deep(JsonStateActor):
    """Three levels under ``open``; ``paused`` is nested, not initial, and has no details."""

    idle_timeout = 60
    lobby = State(initial=True)
    game = State(tags=["playing"])
    match = State(parent=game, initial=True, invoke=["clock"])
    turn = State(parent=match, initial=True, timeout=5)
    waiting = State(parent=match)
    paused = State(parent=game)
    over = State(terminal=True)

    @on.client("start", source=lobby, target=game)
    async def start(self, event: Any) -> None: ...

    @on.client("move", source=turn, target=waiting, guard="legal")
    async def move(self, event: Any) -> None: ...

    @on.client("move", source=turn)
    async def illegal(self, event: Any) -> None: ...

    @on.timeout(turn, target=waiting)
    async def too_slow(self, event: Timeout) -> None: ...

    @on.client("yours", source=waiting, target=turn)
    async def yours(self, event: Any) -> None: ...

    @on.client("pause", source=match, target=paused)
    async def pause(self, event: Any) -> None: ...

    @on.client("resume", source=paused, target=match)
    async def resume(self, event: Any) -> None: ...

    @on.client("restart", source=game, target=turn)  # a composite to a state inside it
    async def restart(self, event: Any) -> None: ...

    @on.client("reset", source=waiting, target=game)  # a state to a composite enclosing it
    async def reset(self, event: Any) -> None: ...

    @on.client("jump", source=lobby, target=waiting)  # into the middle of another composite
    async def jump(self, event: Any) -> None: ...

    @on.client("quit", source=game, target=over)
    async def quit(self, event: Any) -> None: ...

    @on.message("chat.message", source=game)  # internal, on a composite
    async def chat(self, event: Any) -> None: ...

    @on.done("clock", source=match)
    async def clock_done(self, event: Any) -> None: ...

    @on.idle()
    async def idle(self, event: Timeout) -> None: ...

    def legal(self, event: Any) -> bool:
        return bool(event.get("ok"))

    async def clock(self) -> None: ...


class Loops(JsonStateActor):
    """One state with many self-loops: internal ones (guarded and not) and a re-entry."""

    busy = State(initial=True, timeout=2, defer=["news"], tags=["t"])
    done = State(terminal=True)

    @on.client("ping", source=busy)
    async def ping(self, event: Any) -> None: ...

    @on.client("poke", source=busy, guard=lambda self, event: True)
    async def poke(self, event: Any) -> None: ...

    @on.client("poke", source=busy)
    async def poke_refused(self, event: Any) -> None: ...

    @on.message("chat.message", source=busy)
    async def chat(self, event: Any) -> None: ...

    @on.client("again", source=busy, target=busy)  # leaves and re-enters: a solid loop
    async def again(self, event: Any) -> None: ...

    @on.timeout(busy)
    async def late(self, event: Timeout) -> None: ...

    @on.client("stop", source=busy, target=done)
    async def stop(self, event: Any) -> None: ...


class Rejoin(JsonStateActor):
    """Named delays, an eventless choice, and history: a player who leaves resumes where they were."""

    delays: ClassVar[dict[str, float]] = {"mine:move": 20}  # overrides the declared 30 s
    lobby = State(initial=True)
    playing = State()
    mine = State(parent=playing, initial=True, after={"move": 30, "nudge": 10})
    theirs = State(parent=playing)
    away = State(after={"grace": 60})
    over = State(terminal=True)

    @on.client("start", source=lobby, target=playing)
    async def start(self, event: Any) -> None: ...

    @on.after("move", source=mine, target=theirs)
    async def forfeit_turn(self, event: Timeout) -> None: ...

    @on.after("nudge", source=mine)
    async def nudge(self, event: Timeout) -> None: ...

    @on.client("moved", source=theirs, target=mine)
    async def moved(self, event: Any) -> None: ...

    @on.client("left", source=playing, target=away)
    async def left(self, event: Any) -> None: ...

    @on.client("back", source=away, target=playing.history)
    async def back(self, event: Any) -> None: ...

    @on.client("back_deep", source=away, target=playing.deep_history)
    async def back_deep(self, event: Any) -> None: ...

    @on.after("grace", source=away, target=over)
    async def gone(self, event: Timeout) -> None: ...

    @on.always(source=lobby, target=over, guard="shut_down")
    async def shut(self, event: None) -> None: ...

    def shut_down(self, event: Any) -> bool:
        return False


class Calls(JsonStateActor):
    """Parallel regions of open, one with a nested composite and a history target."""

    lobby = State(initial=True)
    in_call = State(terminal=True)
    unmuted = State(region="audio")
    muted = State(region="audio", tags=["quiet"])
    sending = State(region="video")
    camera = State(parent=sending, initial=True)
    screen = State(parent=sending)
    paused = State(region="video", timeout=3)

    @on.client("join", source=lobby, target=in_call)
    async def join(self, event: Any) -> None: ...

    @on.client("mute", source=unmuted, target=muted)
    async def mute(self, event: Any) -> None: ...

    @on.client("unmute", source=muted, target=unmuted)
    async def unmute(self, event: Any) -> None: ...

    @on.client("share", source=camera, target=screen)
    async def share(self, event: Any) -> None: ...

    @on.client("unshare", source=screen, target=camera)
    async def unshare(self, event: Any) -> None: ...

    @on.client("pause", source=sending, target=paused)
    async def pause(self, event: Any) -> None: ...

    @on.timeout(paused, target=sending.history)
    async def resume(self, event: Timeout) -> None: ...


def statechat() -> type[JsonStateActor]:
    spec = importlib.util.spec_from_file_location("statechat_for_diagrams", EXAMPLES / "statechat.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs and typing resolve the module's names through it
    spec.loader.exec_module(module)
    chat: type[JsonStateActor] = module.StateChat
    return chat


MACHINES: dict[str, Callable[[], type[JsonStateActor]]] = {
    "statechat": statechat,
    "deep": lambda: Deep,
    "loops": lambda: Loops,
    "rejoin": lambda: Rejoin,
    "calls": lambda: Calls,
}


@pytest.fixture(params=sorted(MACHINES))
def actor(request: pytest.FixtureRequest) -> type[JsonStateActor]:
    """Each machine drawn by the tests."""
    return MACHINES[request.param]()


# -- a Mermaid stateDiagram-v2 parser ---------------------------------------------------------------

ROOT = ""  # the top-level scope


@attrs.frozen
class MEdge:
    source: str
    target: str
    lines: tuple[str, ...]
    scope: str


@attrs.define
class Mermaid:
    """What a diagram's text says, with the scope (enclosing block) of each statement."""

    declared: dict[str, str] = attrs.field(factory=dict)  # id -> scope of its `state` line
    names: dict[str, str] = attrs.field(factory=dict)  # id -> first line of its label
    label_lines: dict[str, list[str]] = attrs.field(factory=dict)  # id -> the rest of its label
    composites: dict[str, str] = attrs.field(factory=dict)  # id -> scope of its block
    descriptions: list[tuple[str, str, str]] = attrs.field(factory=list)  # (id, scope, text)
    notes: list[tuple[str, str, list[str]]] = attrs.field(factory=list)  # (id, scope, lines)
    edges: list[MEdge] = attrs.field(factory=list)
    classes: dict[str, str] = attrs.field(factory=dict)
    mentions: list[tuple[str, str]] = attrs.field(factory=list)  # (id, scope), in order
    sections: dict[str, int] = attrs.field(factory=dict)  # scope -> its `--` dividers so far
    section_of: dict[str, int] = attrs.field(factory=dict)  # id -> the section of its block it is declared in

    def placed(self, ident: str) -> str:
        """Where Mermaid draws *ident*: the last block other than the top level that mentions it."""
        scopes = [scope for mentioned, scope in self.mentions if mentioned == ident and scope != ROOT]
        return scopes[-1] if scopes else ROOT

    def initials(self, scope: str) -> list[str]:
        return [e.target for e in self.edges if e.source == "[*]" and e.scope == scope]


STATE_AS = re.compile(r'state "(?P<label>[^"]*)" as (?P<id>[A-Za-z]\w*)')
BLOCK = re.compile(r"state (?P<id>[A-Za-z]\w*) \{")
DESCRIPTION = re.compile(r"(?P<id>[A-Za-z]\w*) : (?P<text>.+)")
EDGE = re.compile(r"(?P<source>\[\*\]|[A-Za-z]\w*) --> (?P<target>\[\*\]|[A-Za-z]\w*)(?:: (?P<label>.+))?")
NOTE = re.compile(r"note (?:left|right) of (?P<id>[A-Za-z]\w*)")
CLASS = re.compile(r"class (?P<ids>[\w,]+) (?P<name>\w+)")


def parse_mermaid(text: str) -> Mermaid:
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    out = Mermaid()
    stack = [ROOT]
    note: list[str] | None = None
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        scope = stack[-1]
        if note is not None:
            if line == "end note":
                note = None
            else:
                note.append(line)
        elif line.startswith(("%%", "classDef ")):
            pass
        elif line == "--":  # a concurrent section of the enclosing state begins
            assert scope != ROOT, f"line {number}: a divider outside any state"
            out.sections[scope] = out.sections.get(scope, 0) + 1
        elif line == "}":
            assert len(stack) > 1, f"line {number}: '}}' closes no block"
            stack.pop()
        elif match := STATE_AS.fullmatch(line):
            ident = match["id"]
            assert ident not in out.declared, f"line {number}: {ident} declared twice"
            out.declared[ident] = scope
            out.section_of[ident] = out.sections.get(scope, 0)
            first, *rest = match["label"].split(" · ")  # a composite's details follow its name
            out.names[ident] = first
            out.label_lines[ident] = rest
            out.mentions.append((ident, scope))
        elif match := BLOCK.fullmatch(line):
            ident = match["id"]
            assert ident not in out.composites, f"line {number}: a second block for {ident}"
            out.composites[ident] = scope
            out.mentions.append((ident, scope))
            stack.append(ident)
        elif match := EDGE.fullmatch(line):
            label = match["label"]
            edge = MEdge(match["source"], match["target"], tuple(label.split("<br/>")) if label else (), scope)
            out.edges.append(edge)
            out.mentions.extend((end, scope) for end in (edge.source, edge.target) if end != "[*]")
        elif match := DESCRIPTION.fullmatch(line):
            out.descriptions.append((match["id"], scope, match["text"]))
            out.mentions.append((match["id"], scope))
        elif match := NOTE.fullmatch(line):
            note = []
            out.notes.append((match["id"], scope, note))
            out.mentions.append((match["id"], scope))
        elif match := CLASS.fullmatch(line):
            out.classes.update(dict.fromkeys(match["ids"].split(","), match["name"]))
        else:
            pytest.fail(f"line {number}: {raw!r} is no statement this parser knows")
    assert stack == [ROOT], f"blocks left open: {stack[1:]}"
    assert note is None, "a note is never ended"
    return out


def mermaid_ids(spec: MachineSpec, diagram: Mermaid | None = None) -> dict[str, str]:
    """The id the renderer gives each state: built-in states by name, the user's numbered.

    With *diagram*, also the parallel regions' (``open.audio``): found by their labels.
    """
    ids = {name: name for name in LIFECYCLE_STATES}
    ids.update((path, f"s{index}") for index, path in enumerate(spec.states))
    for region in spec.regions:
        if diagram is None:
            break
        (ident,) = (
            i
            for i, name in diagram.names.items()
            if name == region and diagram.label_lines[i] == ["parallel region"] and diagram.declared[i] == "open"
        )
        ids[f"open.{region}"] = ident
    return ids


def composites(spec: MachineSpec) -> list[str]:
    """Every state drawn as a box around others: open, its parallel regions, composite states."""
    return ["open", *(f"open.{region}" for region in spec.regions), *(p for p, i in spec.states.items() if i.children)]


HISTORY_NAMES = {"shallow": "H", "deep": "H*"}


def mermaid_target(diagram: Mermaid, spec: MachineSpec, t: Transition) -> str:
    """The id an edge of *t* points at: its target's, or that of the target's history pseudo-state."""
    ids = mermaid_ids(spec)
    if t.target is None:
        return ids[t.source]
    if t.history is None:
        return ids[t.target]
    (pseudo,) = (
        i
        for i, scope in diagram.declared.items()
        if scope == ids[t.target] and diagram.names[i] == HISTORY_NAMES[t.history]
    )
    return pseudo


def expected_parent(spec: MachineSpec, path: str) -> str:
    """The state a state is drawn inside: its parent, ``open`` for top-level user states."""
    return spec.states[path].parent if path in spec.states else ROOT


def expected_initial(spec: MachineSpec, composite: str) -> str:
    if composite == "open":
        return spec.chain(spec.initial_leaf)[0]
    if composite.removeprefix("open.") in spec.regions:
        return spec.chain(spec.regions[composite.removeprefix("open.")])[0]
    initial = spec.states[composite].initial
    assert initial is not None
    return initial


# -- Mermaid ----------------------------------------------------------------------------------------


def test_mermaid_every_state_sits_in_its_parent(actor: type[JsonStateActor]) -> None:
    spec = actor.machine
    diagram = parse_mermaid(actor.diagram("mermaid"))
    ids = mermaid_ids(spec, diagram)
    for path, info in spec.states.items():
        ident, parent = ids[path], ids[expected_parent(spec, path)]
        assert diagram.declared.get(ident) == parent, f"{path} is not declared inside {parent}'s block"
        assert diagram.placed(ident) == parent, f"Mermaid would draw {path} inside {diagram.placed(ident)!r}"
        assert diagram.names[ident] == info.name
        if info.children:
            assert diagram.composites.get(ident) == parent, f"{path}'s block is not inside {parent}'s"
        else:
            assert ident not in diagram.composites
    for name in LIFECYCLE_STATES:
        assert diagram.placed(name) == ROOT
    assert diagram.composites.get("open") == (ROOT if spec.states else None)


def test_mermaid_each_region_is_a_section_of_open(actor: type[JsonStateActor]) -> None:
    spec = actor.machine
    diagram = parse_mermaid(actor.diagram("mermaid"))
    ids = mermaid_ids(spec, diagram)
    assert diagram.sections.get("open", 0) == len(spec.regions)
    sections = [diagram.section_of[ids[f"open.{region}"]] for region in spec.regions]
    assert sections == list(range(1, len(spec.regions) + 1))  # one each, after open's own states
    for path, info in spec.states.items():
        if info.parent == "open":
            assert diagram.section_of[ids[path]] == 0, path
    assert set(diagram.sections) <= {"open"}


def test_mermaid_each_composite_has_one_initial_marker(actor: type[JsonStateActor]) -> None:
    spec = actor.machine
    diagram = parse_mermaid(actor.diagram("mermaid"))
    ids = mermaid_ids(spec, diagram)
    assert diagram.initials(ROOT) == ["connecting"]
    boxes = composites(spec)
    for path in boxes:
        assert diagram.initials(ids[path]) == [ids[expected_initial(spec, path)]], path
    assert {e.scope for e in diagram.edges if e.source == "[*]"} == {ROOT, *(ids[p] for p in boxes)}
    assert [e.source for e in diagram.edges if e.target == "[*]"] == ["closed"]


def test_mermaid_edges_join_existing_states_with_the_right_labels(actor: type[JsonStateActor]) -> None:
    spec = actor.machine
    diagram = parse_mermaid(actor.diagram("mermaid"))
    ids = mermaid_ids(spec, diagram)
    known = {*LIFECYCLE_STATES, *diagram.declared, "[*]"}
    for edge in diagram.edges:
        assert edge.source in known, edge
        assert edge.target in known, edge
    drawn = [(e.source, e.target, line) for e in diagram.edges for line in e.lines]
    wanted = [(ids[t.source], mermaid_target(diagram, spec, t), edge_label(t, spec)) for t in spec.transitions]
    for item in wanted:
        assert item in drawn, item
    lifecycle = [d for d in drawn if d[0] in LIFECYCLE_STATES and d[1] in LIFECYCLE_STATES and d[0] != d[1]]
    assert len(drawn) == len(wanted) + len(lifecycle)  # nothing drawn that the spec does not say
    loops = [(e.source, e.lines) for e in diagram.edges if e.source == e.target]
    internal = [source for source, lines in loops if all(line.endswith("(internal)") for line in lines)]
    assert len(internal) == len(set(internal)), "a state's internal loops are one edge, a line each"


def test_mermaid_details_sit_in_the_scope_of_their_state(actor: type[JsonStateActor]) -> None:
    spec = actor.machine
    diagram = parse_mermaid(actor.diagram("mermaid"))
    ids = mermaid_ids(spec, diagram)
    for ident, scope, _ in [*diagram.descriptions, *((i, s, ls) for i, s, ls in diagram.notes)]:
        assert diagram.declared[ident] == scope, f"the details of {ident} are written outside its block"
        assert ident not in diagram.composites, "Mermaid refuses a description on a composite state"
    for path, info in spec.states.items():
        ident = ids[path]
        details = [text for i, _, text in diagram.descriptions if i == ident] + diagram.label_lines[ident]
        expected = []
        if info.timeout is not None:
            expected.append(f"timeout after {info.timeout:g} s")
        if info.after:
            delays = (f"{name} {spec.delays[path, name]:g} s" for name, _ in info.after)
            expected.append("delays " + ", ".join(delays))
        if info.defer:
            expected.append("defers " + ", ".join(sorted(info.defer)))
        if info.invoke:
            expected.append("invokes " + ", ".join(info.invoke))
        if info.tags:
            expected.append("tags " + ", ".join(sorted(info.tags)))
        if info.terminal:
            expected.append("terminal")
        assert details == expected, path


def test_mermaid_deep_machine_text() -> None:
    """The purpose-built cases, spelled out: where each awkward edge is written."""
    spec = Deep.machine
    diagram = parse_mermaid(Deep.diagram("mermaid"))
    ids = mermaid_ids(spec, diagram)
    paused, game = ids["open.game.paused"], ids["open.game"]
    assert diagram.declared[paused] == game
    assert not [d for d in diagram.descriptions if d[0] == paused]  # no details, and still inside
    by_label = {line: e for e in diagram.edges for line in e.lines}
    # an edge between children of one block is written in it; any other at the top level
    assert by_label["move [legal]"].scope == ids["open.game.match"]
    assert by_label["pause"].scope == game
    assert by_label["restart"].scope == ROOT  # game -> game.match.turn
    assert by_label["reset"].scope == ROOT  # game.match.waiting -> game
    assert by_label["jump"].scope == ROOT  # lobby -> game.match.waiting
    assert by_label["message chat.message (internal)"].scope == ids["open"]
    assert by_label["idle 60 s (internal)"].scope == ROOT


def test_mermaid_merges_the_loops_of_one_state() -> None:
    spec = Loops.machine
    busy = mermaid_ids(spec)["open.busy"]
    diagram = parse_mermaid(Loops.diagram("mermaid"))
    loops = [e for e in diagram.edges if e.source == e.target == busy]
    assert [e.lines for e in loops] == [
        (
            "ping (internal)",
            "poke [guard] (internal)",
            "poke (internal)",
            "message chat.message (internal)",
            "after 2 s (internal)",
        ),
        ("again",),  # leaves and re-enters: not merged with the internal ones
    ]


@pytest.mark.parametrize("path", ["open.game.match.waiting", "open.game.paused", "closed"])
def test_mermaid_highlight_marks_the_state_and_its_ancestors(path: str) -> None:
    spec = Deep.machine
    diagram = parse_mermaid(render(spec, "mermaid", highlight=path))
    ids = mermaid_ids(spec, diagram)
    assert diagram.classes.pop(ids[path]) == "current"
    enclosing = ["open", *spec.chain(path)[:-1]] if path in spec.states else []
    assert diagram.classes == dict.fromkeys((ids[p] for p in enclosing), "enclosing")


def test_highlight_of_an_unknown_state_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"highlight='open\.nowhere' is not a state of Deep; its states are: "):
        render(Deep.machine, "mermaid", highlight="open.nowhere")


# -- DOT --------------------------------------------------------------------------------------------


def clusters_of(graph: Any) -> dict[str, tuple[Any, str | None]]:
    """Every cluster by name, with the name of the cluster it sits in."""
    out: dict[str, tuple[Any, str | None]] = {}

    def walk(sub: Any, parent: str | None) -> None:
        for child in sub.subgraphs_iter():
            out[child.name] = (child, parent)
            walk(child, child.name)

    walk(graph, None)
    return out


def innermost_cluster(clusters: dict[str, tuple[Any, str | None]], node: str) -> str | None:
    """The deepest cluster holding *node*, or None for the top level."""
    holding = [name for name, (sub, _) in clusters.items() if sub.has_node(node)]
    return max(holding, key=len) if holding else None


def cluster_name(path: str) -> str | None:
    return None if path == "" else f"cluster_{path}"


def test_dot_clusters_nest_like_the_states(actor: type[JsonStateActor]) -> None:
    pygraphviz = pytest.importorskip("pygraphviz")
    spec = actor.machine
    graph = pygraphviz.AGraph(string=actor.diagram("dot"))
    clusters = clusters_of(graph)
    composite = [path for path, info in spec.states.items() if info.children]
    assert set(clusters) == {f"cluster_{path}" for path in composites(spec)}
    assert clusters["cluster_open"][1] is None
    for region in spec.regions:
        sub, parent = clusters[f"cluster_open.{region}"]
        assert parent == "cluster_open"
        assert sub.graph_attr["label"].splitlines() == [region, "parallel region"]
        assert "dashed" in sub.graph_attr["style"]
    for path in composite:
        assert clusters[f"cluster_{path}"][1] == cluster_name(expected_parent(spec, path))
        assert clusters[f"cluster_{path}"][0].graph_attr["label"].splitlines()[0] == spec.states[path].name
    for path, info in spec.states.items():
        if not info.children:
            assert innermost_cluster(clusters, path) == cluster_name(expected_parent(spec, path)), path
            assert graph.get_node(path).attr["label"].splitlines()[0] == info.name
    for name in LIFECYCLE_STATES:
        if name != "open":
            assert innermost_cluster(clusters, name) is None


def test_dot_each_cluster_has_its_initial_marker(actor: type[JsonStateActor]) -> None:
    pygraphviz = pytest.importorskip("pygraphviz")
    spec = actor.machine
    graph = pygraphviz.AGraph(string=actor.diagram("dot"))
    clusters = clusters_of(graph)
    for name in clusters:
        path = name.removeprefix("cluster_")
        marker = f"{path}.__initial"
        assert innermost_cluster(clusters, marker) == name
        assert graph.get_node(marker).attr["shape"] == "point"
        (edge,) = graph.out_edges(marker)
        initial = expected_initial(spec, path)
        if spec.states[initial].children:  # into a composite child: clipped at its border
            assert edge[1] == f"{initial}.__anchor"
            assert edge.attr["lhead"] == f"cluster_{initial}"
        else:
            assert edge[1] == initial
    (start,) = graph.out_edges("__start")
    assert start[1] == "connecting"


def dot_end(spec: MachineSpec, path: str, history: str | None = None) -> str:
    if history is not None:
        return f"{path}.__{'deep_' if history == 'deep' else ''}history"
    composite = path == "open" or (path in spec.states and spec.states[path].children)
    return f"{path}.__anchor" if composite else path


def test_dot_every_transition_is_an_edge_with_its_label(actor: type[JsonStateActor]) -> None:
    pygraphviz = pytest.importorskip("pygraphviz")
    spec = actor.machine
    graph = pygraphviz.AGraph(string=actor.diagram("dot"))
    drawn: dict[tuple[str, str, str], Any] = {}
    for edge in graph.edges_iter():
        for line in (edge.attr["label"] or edge.attr["xlabel"] or "").splitlines():
            key = (edge[0], edge[1], line.strip())  # an xlabel is padded with a space each side
            assert key not in drawn, f"{key} drawn twice"
            drawn[key] = edge
    for t in spec.transitions:
        target = dot_end(spec, t.target or t.source, t.history)
        edge = drawn.pop((dot_end(spec, t.source), target, edge_label(t, spec)))
        assert (edge.attr["style"] == "dashed") == (t.target is None)
    assert all(source in LIFECYCLE_STATES or source == "open.__anchor" for source, _, _ in drawn), drawn
    loops = [edge for edge in graph.edges_iter() if edge[0] == edge[1]]
    kinds = [(edge[0], edge.attr["style"]) for edge in loops]
    assert len(kinds) == len(set(kinds)), "one loop per state and style, its labels on lines"
    for edge in loops:  # internal loops above the state, a re-entry below: their labels apart
        side = "n" if edge.attr["style"] == "dashed" else "s"
        assert (edge.attr["tailport"], edge.attr["headport"]) == (side, side), edge


def test_dot_clipping_never_points_into_the_other_end(actor: type[JsonStateActor]) -> None:
    pygraphviz = pytest.importorskip("pygraphviz")
    graph = pygraphviz.AGraph(string=actor.diagram("dot"))
    clusters = clusters_of(graph)
    clipped = 0
    for edge in graph.edges_iter():
        for attr, other in (("lhead", edge[0]), ("ltail", edge[1])):
            name = edge.attr[attr]
            if name:
                clipped += 1
                assert name in clusters
                assert not clusters[name][0].has_node(other), f"{edge} clips at {name}, which holds {other}"
                assert not edge.attr["label"], f"{edge}: a clipped edge's label is an xlabel (placed after clipping)"
    assert clipped


def graphviz_complaints(capfd: pytest.CaptureFixture[str], dot: str, fmt: str = "svg") -> list[str]:
    """What Graphviz printed on stderr (its C library writes there directly) laying out *dot*."""
    import pygraphviz  # noqa: PLC0415 - the callers skip without it

    capfd.readouterr()
    pygraphviz.AGraph(string=dot).draw(format=fmt, prog="dot")
    err = capfd.readouterr().err
    # fontconfig's complaints about the machine's font configuration are not Graphviz's
    return [line for line in err.splitlines() if line.strip() and not line.startswith("Fontconfig ")]


@pytest.mark.parametrize("highlighted", [False, True])
@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_dot_lays_out_without_warnings(
    actor: type[JsonStateActor], capfd: pytest.CaptureFixture[str], highlighted: bool, fmt: str
) -> None:
    pytest.importorskip("pygraphviz")
    spec = actor.machine
    dot = render(spec, "dot", highlight=spec.initial_leaf if highlighted else None)
    assert graphviz_complaints(capfd, dot, fmt) == []


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot command is not installed (pygraphviz bundles its own)"
)
def test_the_dot_command_lays_out_without_warnings(actor: type[JsonStateActor]) -> None:
    """The system's Graphviz too (often older than pygraphviz's): no warning, whatever the version."""
    result = subprocess.run(
        ["dot", "-Tsvg"],
        input=actor.diagram("dot"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout
    complaints = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("Fontconfig ")]
    assert complaints == []


def test_the_old_layout_did_warn(capfd: pytest.CaptureFixture[str]) -> None:
    """The check above can fail: a parent-to-child edge clipped at the parent is what Graphviz warns of."""
    pytest.importorskip("pygraphviz")
    edge = '"open.game.__anchor" -> "open.game.match.turn" [label="restart"'
    dot = Deep.diagram("dot")
    assert edge in dot
    complaints = graphviz_complaints(capfd, dot.replace(edge, edge + ', ltail="cluster_open.game"'))
    assert any("inside tail cluster" in line for line in complaints), complaints


def test_svg_of_the_example_draws_every_state_and_marker() -> None:
    pytest.importorskip("pygraphviz")
    chat = statechat()
    svg = chat.diagram("svg")
    for name in ("connecting", "authenticating", "lobby", "in_room", "closing", "closed", "login [token_ok]"):
        assert f">{name}</text>" in svg
    assert svg.count('<g id="clust') == 1
    assert "open.__initial" in svg


def test_an_http_state_actor_nests_its_states_in_serving() -> None:
    from interlock.actors import HttpStateActor  # noqa: PLC0415 - only this test draws one

    class Upload(HttpStateActor):
        reading = State(initial=True, timeout=1)
        checking = State(parent=reading, initial=True)
        storing = State(parent=reading)
        stored = State(terminal=True)

        @on.client("chunk", source=checking, target=storing)
        async def chunk(self, event: Any) -> None: ...

        @on.client("end", source=storing, target=stored)
        async def end(self, event: Any) -> None: ...

        @on.timeout(reading)
        async def late(self, event: Timeout) -> None: ...

    spec = Upload.machine
    ids = {path: f"s{index}" for index, path in enumerate(spec.states)}
    diagram = parse_mermaid(Upload.diagram("mermaid"))
    for path in spec.states:
        parent = ids.get(spec.states[path].parent, "serving")
        assert diagram.declared[ids[path]] == parent
        assert diagram.placed(ids[path]) == parent
    assert diagram.initials(ROOT) == ["receiving"]
    assert diagram.initials("serving") == [ids["open.reading"]]
    assert diagram.initials(ids["open.reading"]) == [ids["open.reading.checking"]]
    assert {e.source for e in diagram.edges if e.target == "[*]"} == {"done", "gone"}
    pygraphviz = pytest.importorskip("pygraphviz")
    graph = pygraphviz.AGraph(string=Upload.diagram("dot"))
    clusters = clusters_of(graph)
    assert clusters["cluster_open"][0].graph_attr["label"] == "serving"
    assert clusters["cluster_open.reading"][1] == "cluster_open"
    assert innermost_cluster(clusters, "open.reading.storing") == "cluster_open.reading"
    assert {"receiving", "done", "gone"} <= set(graph.nodes())


def test_delays_choices_and_history_are_drawn() -> None:
    spec = Rejoin.machine
    diagram = parse_mermaid(Rejoin.diagram("mermaid"))
    ids = mermaid_ids(spec, diagram)
    lines = {line: e for e in diagram.edges for line in e.lines}
    mine, theirs, away, playing = (ids[f"open.{p}"] for p in ("playing.mine", "playing.theirs", "away", "playing"))
    assert (lines["after move (20 s)"].source, lines["after move (20 s)"].target) == (mine, theirs)  # the override
    assert (mine, playing, "delays move 20 s, nudge 10 s") in diagram.descriptions
    assert lines["after nudge (10 s) (internal)"].target == mine
    assert lines["always [shut_down]"].source == ids["open.lobby"]
    history = {
        diagram.names[i]: i for i, scope in diagram.declared.items() if scope == playing and i not in ids.values()
    }
    assert set(history) == {"H", "H*"}
    assert (lines["back"].source, lines["back"].target) == (away, history["H"])
    assert (lines["back_deep"].source, lines["back_deep"].target) == (away, history["H*"])
    assert diagram.initials(playing) == [mine]  # the pseudo-states are not initial
    pygraphviz = pytest.importorskip("pygraphviz")
    graph = pygraphviz.AGraph(string=Rejoin.diagram("dot"))
    clusters = clusters_of(graph)
    for key, name in (("open.playing.__history", "H"), ("open.playing.__deep_history", "H*")):
        assert innermost_cluster(clusters, key) == "cluster_open.playing"
        assert graph.get_node(key).attr["label"] == name
        assert graph.get_node(key).attr["shape"] == "circle"


def test_dot_without_clusters_keeps_plain_labels(capfd: pytest.CaptureFixture[str]) -> None:
    """xlabels are for edges among clusters; in a flat graph a plain label gets its own room."""
    pygraphviz = pytest.importorskip("pygraphviz")
    from interlock.actors import WebsocketActor  # noqa: PLC0415 - only this test draws one

    dot = WebsocketActor.diagram("dot")
    graph = pygraphviz.AGraph(string=dot)
    texts = [(edge.attr["label"], edge.attr["xlabel"]) for edge in graph.edges_iter()]
    assert ("accept", None) in texts
    assert all(not xlabel for _, xlabel in texts)
    assert graphviz_complaints(capfd, dot) == []


def test_highlight_marks_a_state_in_each_region() -> None:
    spec = Calls.machine
    marked = ["open.in_call", "open.audio.muted", "open.video.sending.screen"]
    diagram = parse_mermaid(render(spec, "mermaid", highlight=marked))
    ids = mermaid_ids(spec, diagram)
    current = {i for i, name in diagram.classes.items() if name == "current"}
    enclosing = {i for i, name in diagram.classes.items() if name == "enclosing"}
    assert current == {ids[path] for path in marked}
    assert enclosing == {ids[p] for p in ("open", "open.audio", "open.video", "open.video.sending")}
    pygraphviz = pytest.importorskip("pygraphviz")
    graph = pygraphviz.AGraph(string=render(spec, "dot", highlight=marked))
    filled = {str(node) for node in graph.nodes_iter() if node.attr["fillcolor"] == "#ffd54f"}
    assert filled == set(marked)
    clusters = clusters_of(graph)
    ringed = {name for name, (sub, _) in clusters.items() if sub.graph_attr["color"] == "#e65100"}
    assert ringed == {"cluster_open", "cluster_open.audio", "cluster_open.video", "cluster_open.video.sending"}
