"""The planner: what one step of a state machine does, as plain data (h11's shape).

Given a compiled :class:`~interlock.dsl.MachineSpec`, the functions here answer, without
an event loop and without touching an actor:

* :func:`select` — which transition an event runs in a state (the first candidate,
  deepest state first, whose guard accepts it), or that none does;
* :func:`target_of` — the leaf state a transition goes to, following initial children
  and, for a history target, the memory of where the state was last left;
* :func:`plan_crossing` — which states are exited (innermost first) and entered
  (outermost first), and for each the hooks to run, the delays to arm or disarm, the
  invoked tasks to start or cancel, and whether its history is to be recorded.

The runtime (``interlock.actors``) executes a plan hook by hook and checks, after each
one, whether the hook moved the actor elsewhere (then the rest of the plan is void).
Plans depend only on the spec and their arguments, so they are cached per spec.

Rules:

1. A transition runs its handler in the source state; its target, if any, is then
   resolved to a leaf (:func:`target_of`).
2. The states below the common ancestor of where the actor is and where it goes are
   exited and entered. An external transition (every transition with a target) also
   exits and re-enters its declared target and what is below it.
3. Exiting a state disarms its delays and cancels its tasks before its exit hooks run;
   entering one runs its enter hooks before its delays are armed and tasks started.
4. A state whose history some transition targets records, as it is exited, the leaf
   the actor was in: a shallow history re-enters that leaf's ancestor just below the
   state (then its initial children), a deep history the leaf itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import attrs

from ._compile import MachineSpec, Transition

__all__ = ["Entry", "Exit", "Plan", "plan_crossing", "select", "target_of"]

_CACHE_LIMIT: Final = 4096  # plans per spec; more means an unusual machine, and is just recomputed


@attrs.frozen
class Exit:
    """Leaving one state."""

    state: str
    parent: str
    hooks: tuple[str, ...]
    delays: tuple[str, ...]
    """The names of the delays to disarm (``""``: the state's timeout)."""
    tasks: bool
    """Whether the state invokes tasks (to cancel)."""
    records: bool
    """Whether to record where the actor was, for the state's history."""


@attrs.frozen
class Entry:
    """Entering one state."""

    state: str
    hooks: tuple[str, ...]
    delays: tuple[str, ...]
    """The names of the delays to arm (``""``: the state's timeout)."""
    tasks: tuple[str, ...]
    """The invoked tasks to start."""


@attrs.frozen
class Plan:
    """One crossing: the exits, innermost first, then the entries, outermost first."""

    exits: tuple[Exit, ...]
    entries: tuple[Entry, ...]


def select(
    spec: MachineSpec, state: str, kind: str, event: str, accepts: Callable[[Transition], bool]
) -> tuple[Transition, ...] | Transition | None:
    """The transition *event* runs in *state*.

    Returns the transition whose guard accepted it (*accepts* evaluates a guard), the
    candidates if there were some but every guard refused, or None if the state has no
    transition for the event at all.
    """
    candidates = spec.dispatch.get((state, kind, event))
    if candidates is None:
        return None
    for transition in candidates:
        if accepts(transition):
            return transition
    return candidates


def target_of(spec: MachineSpec, transition: Transition, history: Mapping[str, str] | None) -> str:
    """The leaf *transition* goes to; *history* maps a state to the leaf it was left from."""
    target = transition.target
    assert target is not None, "internal transitions have no target"
    last = history.get(target) if history and transition.history is not None else None
    if last is None:
        return spec.resolve(target)
    if transition.history == "deep":
        return last
    depth = len(spec.chain(target))
    return spec.resolve(spec.chain(last)[depth])


def plan_crossing(spec: MachineSpec, inside: str, new: str, reenter: str | None) -> Plan:
    """Exits from *inside* (the innermost state entered) and entries down to *new*."""
    key = (inside, new, reenter)
    plan: Plan | None = spec.plans.get(key)
    if plan is None:
        plan = _plan(spec, inside, new, reenter)
        if len(spec.plans) < _CACHE_LIMIT:
            spec.plans[key] = plan
    return plan


def _plan(spec: MachineSpec, inside: str, new: str, reenter: str | None) -> Plan:
    old_chain, new_chain = spec.chain(inside), spec.chain(new)
    common = 0
    while common < min(len(old_chain), len(new_chain)) and old_chain[common] == new_chain[common]:
        common += 1
    if reenter is not None:
        common = min(common, max(len(spec.chain(reenter)) - 1, 0))
    exits = []
    for path in reversed(old_chain[common:]):
        info = spec.states[path]
        exits.append(Exit(path, info.parent, info.exit, _delay_names(spec, path), bool(info.invoke), info.history))
    entries = []
    for path in new_chain[common:]:
        info = spec.states[path]
        entries.append(Entry(path, info.enter, _delay_names(spec, path), info.invoke))
    return Plan(tuple(exits), tuple(entries))


def _delay_names(spec: MachineSpec, path: str) -> tuple[str, ...]:
    info = spec.states[path]
    names = [""] if info.timeout is not None else []
    names.extend(name for name, _ in info.after)
    return tuple(names)
