"""Resolve the `model` a client asks for to a deployment and its routable replicas.

A name is, in this order: a served name (the deployment's `name`), an alias of one, or a
role. A role from the config (`roles:` in corral.yaml) declares requirements (minimum
context, tool calling, reasoning) and resolves only to a routable replica that meets them:
first the served names in the role's `prefer` list, then deployments that list the role,
then any other that qualifies. Several replicas with one served name are one deployment;
which replica takes a request is the balancer's job (`balance.py`).

`fleet.deployments()` is read once per request; a route carries its deployment's policy
(limits, capabilities, timeouts) and its routable replicas. Resolution is a linear scan,
which is cheaper than keeping an index in sync for fleets of tens of deployments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from corral.config import Role
from corral.fleet import DeploymentView, FleetView, Policy, Replica
from corral.gateway.errors import HttpError

Kind = Literal["deployment", "alias", "role"]


@dataclass(frozen=True)
class Route:
    """Where one request goes: a deployment (served name) and its routable replicas."""

    requested: str
    served_name: str
    kind: Kind
    candidates: tuple[Replica, ...]
    policy: Policy


@dataclass(frozen=True)
class CatalogEntry:
    """One name in `/v1/models`: what kind it is and what it resolves to right now."""

    name: str
    kind: Kind
    resolves_to: tuple[str, ...]
    routable: bool
    context_length: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    tail: tuple[str, ...] = ()


def meets(policy: Policy, role: Role) -> bool:
    """Whether a deployment's capabilities satisfy a role's requirements."""
    caps = policy.capabilities
    if caps.context_length < role.min_context:
        return False
    if role.tools and not caps.tools:
        return False
    return not (role.reasoning and not caps.reasoning)


class Router:
    """Name → Route over a live fleet view. Holds no state of its own."""

    def __init__(self, fleet: FleetView, roles: Mapping[str, Role] | None = None) -> None:
        self.fleet = fleet
        self.roles: Mapping[str, Role] = roles or {}

    def resolve(self, name: str) -> Route:
        """The route for `name`; HttpError 404 (unknown, naming what exists) or 503 (none ready)."""
        views = self.fleet.deployments()
        route = _by_served_name(name, views) or _by_alias(name, views)
        if route is None:
            route = self._by_role(name, views)
        if route is None:
            known = ", ".join(self.names(views)) or "none"
            raise HttpError(
                404,
                f"The model `{name}` does not exist. Models served here: {known}",
                param="model",
                code="model_not_found",
            )
        if not route.candidates:
            raise HttpError(
                503,
                f"no replica of `{name}` is ready to take requests right now",
                code="no_ready_replica",
                headers={"Retry-After": "5"},
            )
        return route

    def _by_role(self, name: str, views: Sequence[DeploymentView]) -> Route | None:
        role = self.roles.get(name)
        declared = [v for v in views if name in v.policy.roles]
        if role is None and not declared:
            return None
        role = role or Role()
        qualified = [v for v in views if v.routable and meets(v.policy, role)]
        for view in _preference(name, role, qualified):
            return Route(name, view.name, "role", view.routable, view.policy)
        return Route(name, name, "role", (), Policy(name))

    def names(self, views: Sequence[DeploymentView] | None = None) -> list[str]:
        """Every name a client may ask for: served names, aliases, roles (in that order)."""
        views = self.fleet.deployments() if views is None else views
        seen: dict[str, None] = {}
        for view in views:
            seen.setdefault(view.name)
        for view in views:
            for alias in view.policy.aliases:
                seen.setdefault(alias)
        for role in [*self.roles, *(ro for view in views for ro in view.policy.roles)]:
            seen.setdefault(role)
        return list(seen)

    def catalog(self) -> list[CatalogEntry]:
        """What `/v1/models` lists: each name with its kind and current resolution."""
        views = self.fleet.deployments()
        by_name = {v.name: v for v in views}
        entries: list[CatalogEntry] = []
        for name in self.names(views):
            route = _by_served_name(name, views) or _by_alias(name, views)
            route = route or self._by_role(name, views)
            if route is None:
                continue
            context = route.policy.capabilities.context_length if route.candidates else None
            entry = CatalogEntry(name, route.kind, _targets(name, route), bool(route.candidates),
                                 context)  # fmt: skip
            view = by_name.get(route.served_name)
            entries.append(_why_not(_with_state(entry, view), view))
        return entries


def _by_served_name(name: str, views: Sequence[DeploymentView]) -> Route | None:
    for view in views:
        if view.name == name:
            return Route(name, name, "deployment", view.routable, view.policy)
    return None


def _by_alias(name: str, views: Sequence[DeploymentView]) -> Route | None:
    """An alias goes to the first deployment carrying it that has a routable replica."""
    carrying = [v for v in views if name in v.policy.aliases]
    if not carrying:
        return None
    chosen = ([v for v in carrying if v.routable] or carrying)[0]
    return Route(name, chosen.name, "alias", chosen.routable, chosen.policy)


def _preference(name: str, role: Role, qualified: list[DeploymentView]) -> list[DeploymentView]:
    """Deployments in the order a role tries them: `prefer`, then declaring, then the rest."""
    order: dict[str, DeploymentView] = {}
    by_name = {v.name: v for v in qualified}
    for served in role.prefer:
        if served in by_name:
            order.setdefault(served, by_name[served])
    for view in qualified:
        if name in view.policy.roles:
            order.setdefault(view.name, view)
    for view in qualified:
        order.setdefault(view.name, view)
    return list(order.values())


def _with_state(entry: CatalogEntry, view: DeploymentView | None) -> CatalogEntry:
    """The deployment's state (running, stopped, starting, evicted...) and its memory."""
    if view is None or not view.state:
        return entry
    state = "running" if view.state == "ready" else view.state
    extra = {**entry.extra, "state": state, "memory_gib": view.memory_gib,
             "on_demand": view.on_demand}  # fmt: skip
    return CatalogEntry(entry.name, entry.kind, entry.resolves_to, entry.routable,
                        entry.context_length, extra, entry.reason, entry.tail)  # fmt: skip


def _why_not(entry: CatalogEntry, view: DeploymentView | None) -> CatalogEntry:
    """A name that can't take requests carries its deployment's reason and last lines."""
    if entry.routable or view is None:
        return entry
    reason = view.reason or "no replica is ready yet"
    return CatalogEntry(entry.name, entry.kind, entry.resolves_to, False, None, entry.extra,
                        reason, view.tail)  # fmt: skip


def _targets(name: str, route: Route) -> tuple[str, ...]:
    if route.kind == "deployment":
        return (name,)
    if route.kind == "alias":
        return (route.served_name,)
    return (route.served_name,) if route.candidates else ()
