"""Resolve the `model` a client asks for to a deployment and its routable replicas.

A name is, in this order: a served name (the deployment's `name`), an alias of one, or a
role. A role from the config (`roles:` in corral.yaml) declares requirements (minimum
context, tool calling, reasoning) and resolves only to a routable replica that meets them:
first the served names in the role's `prefer` list, then deployments that list the role,
then any other that qualifies. Several replicas with one served name are one deployment;
which replica takes a request is the balancer's job (`balance.py`).

`fleet.replicas()` is read once per request; resolution is a linear scan, which is cheaper
than keeping an index in sync for fleets of tens of replicas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from corral.config import Role
from corral.controller.view import FleetView, Replica
from corral.gateway.errors import HttpError

Kind = Literal["deployment", "alias", "role"]


@dataclass(frozen=True)
class Route:
    """Where one request goes: a deployment (served name) and its routable replicas."""

    requested: str
    served_name: str
    kind: Kind
    candidates: tuple[Replica, ...]


@dataclass(frozen=True)
class CatalogEntry:
    """One name in `/v1/models`: what kind it is and what it resolves to right now."""

    name: str
    kind: Kind
    resolves_to: tuple[str, ...]
    routable: bool
    context_length: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def meets(replica: Replica, role: Role) -> bool:
    """Whether a replica's capabilities satisfy a role's requirements."""
    caps = replica.capabilities
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
        replicas = self.fleet.replicas()
        route = _by_served_name(name, replicas) or _by_alias(name, replicas)
        if route is None:
            route = self._by_role(name, replicas)
        if route is None:
            known = ", ".join(self.names(replicas)) or "none"
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

    def _by_role(self, name: str, replicas: Sequence[Replica]) -> Route | None:
        role = self.roles.get(name)
        declared = [r for r in replicas if name in r.roles]
        if role is None and not declared:
            return None
        role = role or Role()
        qualified = [r for r in replicas if r.routable and meets(r, role)]
        for served in _preference(name, role, qualified):
            chosen = tuple(r for r in qualified if r.served_name == served)
            return Route(name, served, "role", chosen)
        return Route(name, name, "role", ())

    def names(self, replicas: Sequence[Replica] | None = None) -> list[str]:
        """Every name a client may ask for: served names, aliases, roles (in that order)."""
        replicas = self.fleet.replicas() if replicas is None else replicas
        seen: dict[str, None] = {}
        for rep in replicas:
            seen.setdefault(rep.served_name)
        for rep in replicas:
            for alias in rep.aliases:
                seen.setdefault(alias)
        for role in [*self.roles, *(ro for rep in replicas for ro in rep.roles)]:
            seen.setdefault(role)
        return list(seen)

    def catalog(self) -> list[CatalogEntry]:
        """What `/v1/models` lists: each name with its kind and current resolution."""
        replicas = self.fleet.replicas()
        entries: list[CatalogEntry] = []
        for name in self.names(replicas):
            route = (
                _by_served_name(name, replicas)
                or _by_alias(name, replicas)
                or self._by_role(name, replicas)
            )
            if route is None:
                continue
            targets = _targets(name, route)
            context = max((r.capabilities.context_length for r in route.candidates), default=None)
            entries.append(CatalogEntry(name, route.kind, targets, bool(route.candidates), context))
        return entries


def _by_served_name(name: str, replicas: Sequence[Replica]) -> Route | None:
    matching = [r for r in replicas if r.served_name == name]
    if not matching:
        return None
    return Route(name, name, "deployment", tuple(r for r in matching if r.routable))


def _by_alias(name: str, replicas: Sequence[Replica]) -> Route | None:
    """An alias goes to the first deployment carrying it that has a routable replica."""
    carrying = [r for r in replicas if name in r.aliases]
    if not carrying:
        return None
    ready = [r for r in carrying if r.routable]
    served = (ready or carrying)[0].served_name
    return Route(name, served, "alias", tuple(r for r in ready if r.served_name == served))


def _preference(name: str, role: Role, qualified: list[Replica]) -> list[str]:
    """Served names in the order a role tries them: `prefer`, then declaring, then the rest."""
    order: dict[str, None] = {}
    available = {r.served_name for r in qualified}
    for served in role.prefer:
        if served in available:
            order.setdefault(served)
    for rep in qualified:
        if name in rep.roles:
            order.setdefault(rep.served_name)
    for rep in qualified:
        order.setdefault(rep.served_name)
    return list(order)


def _targets(name: str, route: Route) -> tuple[str, ...]:
    if route.kind == "deployment":
        return (name,)
    if route.kind == "alias":
        return (route.served_name,)
    return (route.served_name,) if route.candidates else ()
