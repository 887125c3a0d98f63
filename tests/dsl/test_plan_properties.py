"""Property tests of the planner, driven directly: no event loop, no actor.

For every pair of states of a machine with three levels of nesting, a region and a history
target, and any re-entered target, the crossing :func:`plan_crossing` computes is checked
against the definition of a statechart move:

* exits run innermost first and entries outermost first, each a chain of parents;
* what is exited is what was active below the common ancestor (widened to the re-entered
  target's parent), and what is entered is the path down to the new state from there;
* executing the plan from ``inside`` ends in ``new``, and a state is exited and entered
  again only when it is re-entered on purpose;
* every delay a state declares is disarmed on exit and armed on entry;

and :func:`target_of` resolves a history target to a state inside it, restoring the
recorded leaf (deep) or the recorded child's initial leaf (shallow).
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from interlock.dsl import MachineSpec, State, Timeout, compile_machine, on, plan_crossing, target_of


class Tree:
    """open > a (timeout) > (a1 > (x, y), a2); b (delays) > (b1, b2); c; region r: r1, r2."""

    idle_timeout = None
    a = State(timeout=5)
    a1 = State(parent=a)
    x = State(parent=a1)
    y = State(parent=a1, after={"nudge": 1})
    a2 = State(parent=a)
    b = State(after={"warn": 2, "end": 3})
    b1 = State(parent=b)
    b2 = State(parent=b)
    c = State()
    r1 = State(region="r")
    r2 = State(region="r")

    @on.timeout(a, target=c)
    def a_late(self, event: Timeout) -> None: ...

    @on.after("nudge", source=y)
    def nudged(self, event: Timeout) -> None: ...

    @on.after("warn", source=b)
    def warned(self, event: Timeout) -> None: ...

    @on.after("end", source=b, target=c)
    def ended(self, event: Timeout) -> None: ...

    @on.client("go", source=[a, b, c], target=a.history)
    def back(self, event: Any) -> None: ...

    @on.client("deep", source=[b, c], target=a.deep_history)
    def deep(self, event: Any) -> None: ...

    @on.client("next", source=x, target=y)
    def to_y(self, event: Any) -> None: ...

    @on.client("next", source=y, target=a2)
    def to_a2(self, event: Any) -> None: ...

    @on.client("next", source=a2, target=b)
    def to_b(self, event: Any) -> None: ...

    @on.client("next", source=b1, target=b2)
    def to_b2(self, event: Any) -> None: ...

    @on.client("next", source=b2, target=c)
    def to_c(self, event: Any) -> None: ...

    @on.client("flip", source=r1, target=r2)
    def flip(self, event: Any) -> None: ...

    @on.client("flip", source=r2, target=r1)
    def flop(self, event: Any) -> None: ...


SPEC: MachineSpec = compile_machine(Tree)
MAIN = sorted(path for path, info in SPEC.states.items() if info.region is None)
LEAVES = [path for path in MAIN if not SPEC.states[path].children]
REGION = sorted(path for path, info in SPEC.states.items() if info.region == "r")


def chain(path: str) -> list[str]:
    return SPEC.chain(path)


@given(st.sampled_from(MAIN), st.sampled_from(LEAVES), st.one_of(st.none(), st.sampled_from(MAIN)))
def test_a_crossing_is_a_statechart_move(inside: str, new: str, reenter: str | None) -> None:
    if reenter is not None and not (new == reenter or new.startswith(reenter + ".")):
        reenter = None  # a re-entered target is always the new state or encloses it
    plan = plan_crossing(SPEC, inside, new, reenter)
    exits = [step.state for step in plan.exits]
    entries = [step.state for step in plan.entries]
    old_chain, new_chain = chain(inside), chain(new)
    common = 0
    while common < min(len(old_chain), len(new_chain)) and old_chain[common] == new_chain[common]:
        common += 1
    if reenter is not None:
        common = min(common, max(len(chain(reenter)) - 1, 0))
    assert exits == old_chain[common:][::-1]
    assert entries == new_chain[common:]
    for inner, outer in itertools.pairwise(exits):  # innermost first, each its parent's child
        assert SPEC.states[inner].parent == outer
    for outer, inner in itertools.pairwise(entries):
        assert SPEC.states[inner].parent == outer
    # executing it: from inside, leave the exits, enter the entries: that is new's chain
    active = old_chain[: len(old_chain) - len(exits)]
    assert active + entries == new_chain
    twice = set(exits) & set(entries)  # left and entered again: only the re-entered target and below
    assert not twice or reenter is not None
    assert all(state == reenter or state.startswith(f"{reenter}.") for state in twice)
    for step in plan.exits:
        assert step.parent == SPEC.states[step.state].parent
        assert set(step.delays) == {name for (path, name) in SPEC.delays if path == step.state}
        assert step.records == SPEC.states[step.state].history
    for entry in plan.entries:
        assert set(entry.delays) == {name for (path, name) in SPEC.delays if path == entry.state}


@given(st.sampled_from(REGION), st.sampled_from(REGION))
def test_a_region_crossing_stays_in_its_region(inside: str, new: str) -> None:
    plan = plan_crossing(SPEC, inside, new, new)
    touched = [step.state for step in plan.exits] + [entry.state for entry in plan.entries]
    assert all(SPEC.states[state].region == "r" for state in touched)
    assert [step.state for step in plan.entries] == [new]


HISTORY = SPEC.dispatch["open.c", "client", "go"][0]
DEEP = SPEC.dispatch["open.c", "client", "deep"][0]
A_LEAVES = [leaf for leaf in LEAVES if leaf.startswith("open.a.")]


@given(st.one_of(st.none(), st.sampled_from(A_LEAVES)))
def test_history_restores_inside_its_state(last: str | None) -> None:
    history = {} if last is None else {"open.a": last}
    shallow, deep = target_of(SPEC, HISTORY, history), target_of(SPEC, DEEP, history)
    assert shallow.startswith("open.a.")
    assert deep.startswith("open.a.")
    assert not SPEC.states[shallow].children
    assert not SPEC.states[deep].children
    if last is None:
        assert shallow == deep == SPEC.resolve("open.a")
    else:
        assert deep == last
        child = chain(last)[1]  # open.a's child on the way to the recorded leaf
        assert shallow == SPEC.resolve(child)
