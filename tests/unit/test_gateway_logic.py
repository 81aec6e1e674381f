"""Pure gateway logic: routing, balancing and the breaker, admission, auth, limits, SSE."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from corral.config import ApiKey, Capabilities, Limits, Role
from corral.errors import ConfigError
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway.admission import Admission
from corral.gateway.app import normalize_path
from corral.gateway.auth import Authenticator, KeyRecord, presented_key
from corral.gateway.balance import Balancer
from corral.gateway.errors import HttpError, engine_error_body
from corral.gateway.keystore import KeyStore
from corral.gateway.limits import check_caps, drop_engine_fields, upstream_body
from corral.gateway.metrics import GatewayMetrics
from corral.gateway.routing import Router
from corral.gateway.sse import SseRelay
from corral.ledger.db import open_ledger


def rep(rid: str, name: str = "m", **kw: object) -> tuple[Policy, Replica]:
    policy = Policy(name, **kw)  # type: ignore[arg-type]
    return policy, Replica(id=rid, served_name=name, base_url=f"http://{rid}", routable=True)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- routing ------------------------------------------------------------------------------
def test_resolves_served_name_alias_and_role() -> None:
    fleet = StaticFleet.of(
        [
            rep("a", "small", aliases=("default",)),
            rep("b", "big", capabilities=Capabilities(context_length=32768, reasoning=True)),
            rep("c", "big", capabilities=Capabilities(context_length=32768, reasoning=True)),
        ]
    )
    router = Router(fleet, {"architect": Role(min_context=16000, reasoning=True)})
    assert router.resolve("small").served_name == "small"
    assert router.resolve("default").kind == "alias"
    route = router.resolve("architect")
    assert (route.served_name, route.kind) == ("big", "role")
    assert [r.id for r in route.candidates] == ["b", "c"]


def test_role_prefers_listed_names_then_declaring_deployments() -> None:
    fleet = StaticFleet.of([rep("a", "one"), rep("b", "two", roles=("chat",)), rep("c", "three")])
    assert Router(fleet, {"chat": Role()}).resolve("chat").served_name == "two"
    assert Router(fleet, {"chat": Role(prefer=["three"])}).resolve("chat").served_name == "three"


def test_role_without_a_qualifying_replica_is_503_and_unknown_is_404() -> None:
    router = Router(StaticFleet.of([rep("a", "small")]), {"thinker": Role(reasoning=True)})
    with pytest.raises(HttpError) as unavailable:
        router.resolve("thinker")
    assert unavailable.value.status == 503
    with pytest.raises(HttpError) as unknown:
        router.resolve("gpt-4")
    assert unknown.value.status == 404
    assert "small, thinker" in unknown.value.message


def test_not_routable_replica_is_not_a_candidate() -> None:
    fleet = StaticFleet.of([(Policy("m"), Replica(id="a", served_name="m", base_url="http://a"))])
    with pytest.raises(HttpError) as info:
        Router(fleet).resolve("m")
    assert info.value.status == 503


# -- balancing and the breaker ----------------------------------------------------------------
def test_least_outstanding_wins() -> None:
    balancer = Balancer(failures=3, cooldown=10, clock=Clock())
    replicas = [rep("a")[1], rep("b")[1]]
    balancer.begin("a")
    assert all(balancer.pick(replicas).id == "b" for _ in range(5))  # type: ignore[union-attr]


def test_breaker_opens_then_probes_one_request_then_closes() -> None:
    clock = Clock()
    balancer = Balancer(failures=2, cooldown=10, clock=clock)
    replicas = [rep("a")[1], rep("b")[1]]
    balancer.failed("a")
    balancer.failed("a")
    assert balancer.state("a") == "open"
    assert {balancer.pick(replicas).id for _ in range(4)} == {"b"}  # type: ignore[union-attr]
    clock.now = 11
    assert balancer.state("a") == "half-open"
    balancer.begin("b")  # so the least-loaded pick is `a`, the probe
    assert balancer.pick(replicas).id == "a"  # type: ignore[union-attr]
    assert balancer.pick(replicas).id == "b"  # type: ignore[union-attr]  # one probe at a time
    balancer.succeeded("a")
    assert balancer.state("a") == "closed"


def test_failed_probe_reopens() -> None:
    clock = Clock()
    balancer = Balancer(failures=1, cooldown=5, clock=clock)
    balancer.failed("a")
    clock.now = 6
    assert balancer.pick([rep("a")[1]]) is not None
    balancer.failed("a")
    assert balancer.state("a") == "open"
    assert balancer.pick([rep("a")[1]]) is None


# -- admission -------------------------------------------------------------------------------
async def test_admission_queues_in_order_and_refuses_when_full() -> None:
    admission = Admission()
    await admission.enter("m", 1, 1, 5)
    waiter = asyncio.ensure_future(admission.enter("m", 1, 1, 5))
    await asyncio.sleep(0)
    with pytest.raises(HttpError) as full:
        await admission.enter("m", 1, 1, 5)
    assert full.value.status == 429
    assert full.value.headers["Retry-After"] == "1"
    admission.leave("m")
    await waiter
    assert admission.gates["m"].in_flight == 1
    admission.leave("m")
    assert admission.gates["m"].in_flight == 0


async def test_cancelled_waiter_gives_its_place_back() -> None:
    admission = Admission()
    await admission.enter("m", 1, 4, 5)
    waiter = asyncio.ensure_future(admission.enter("m", 1, 4, 5))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert admission.gates["m"].queued == 0
    admission.leave("m")
    assert admission.gates["m"].in_flight == 0


# -- auth ------------------------------------------------------------------------------------
def test_keys_by_value_or_hash_and_both_headers() -> None:
    keys = [
        ApiKey(name="a", key=SecretStr("k1")),
        ApiKey(name="b", sha256=hashlib.sha256(b"k2").hexdigest(), models=["x"]),
    ]
    auth = Authenticator(keys, None, clock=Clock())
    assert auth.authenticate({"Authorization": "Bearer k1"}).name == "a"
    who = auth.authenticate({"x-api-key": "k2"})
    assert who.name == "b"
    assert who.may_use("x")
    assert not who.may_use("y")
    with pytest.raises(HttpError):
        auth.authenticate({"Authorization": "Basic k1"})
    assert presented_key({"Authorization": "bearer  k9 "}) == "k9"


def test_revoking_the_last_stored_key_locks_rather_than_opens() -> None:
    records: list[KeyRecord] = [KeyRecord("a", hashlib.sha256(b"k").hexdigest())]

    class Source:
        def active_keys(self) -> list[KeyRecord]:
            return records

    clock = Clock()
    auth = Authenticator([], Source(), clock=clock)
    assert auth.authenticate({"x-api-key": "k"}).name == "a"
    records.clear()
    clock.now = 5
    with pytest.raises(HttpError) as info:
        auth.authenticate({"x-api-key": "k"})
    assert info.value.status == 401


def test_keystore_hashes_and_shows_once(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.sqlite3") as ledger:
        store = KeyStore(ledger)
        created = store.create("ci", ["default"])
        raw = ledger.conn.execute("SELECT * FROM api_keys").fetchone()
        assert created.key not in json.dumps(dict(raw))
        assert raw["sha256"] == hashlib.sha256(created.key.encode()).hexdigest()
        with pytest.raises(ConfigError, match="already exists"):
            store.create("ci")
        store.revoke("ci")
        assert store.active_keys() == []
        with pytest.raises(ConfigError, match="no active key"):
            store.revoke("ci")


# -- limits and paths -----------------------------------------------------------------------
def test_caps_and_context() -> None:
    limits, caps = Limits(max_n=2, max_tokens=512), Capabilities(context_length=1024)
    check_caps({"n": 2, "max_tokens": 512}, limits, caps)
    for bad in ({"n": 3}, {"max_tokens": 513}, {"max_completion_tokens": 0}, {"n": True}):
        with pytest.raises(HttpError):
            check_caps(bad, limits, caps)
    with pytest.raises(HttpError, match="context of 1024"):
        check_caps({"max_tokens": 2000}, Limits(), caps)


def test_engine_fields_and_upstream_body() -> None:
    payload = {"model": "alias", "chat_template": "{{x}}", "chat_template_kwargs": {}, "n": 1}
    assert sorted(drop_engine_fields(payload, ["chat_template_kwargs"])) == ["chat_template"]
    body = json.loads(upstream_body(payload, "served", stream=True))
    assert body == {"model": "served", "chat_template_kwargs": {}, "n": 1,
                    "stream_options": {"include_usage": True}}  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "want"),
    [("/v1/models", "/v1/models"), ("//v1//models/", "/v1/models"), ("/a/../metrics", "/metrics"),
     ("/v1/./models", "/v1/models"), ("/../../health", "/health"), ("/", "/")],
)  # fmt: skip
def test_normalize_path(raw: str, want: str) -> None:
    assert normalize_path(raw) == want


# -- SSE relay and errors --------------------------------------------------------------------
def test_relay_splits_events_across_reads_and_drops_unasked_usage() -> None:
    relay = SseRelay("alias", wants_usage=False)
    chunk = b'data: {"model":"served","choices":[{"delta":{"reasoning_content":"hm"}}]}\n\n'
    usage = b'data: {"model":"served","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n'  # noqa: E501
    out = relay.feed(chunk[:20]) + relay.feed(chunk[20:] + usage) + relay.finish()
    events = [e for e in out.split(b"\n\n") if e]
    first = json.loads(events[0][6:])
    assert first["model"] == "alias"
    assert first["choices"][0]["delta"] == {"reasoning_content": "hm", "reasoning": "hm"}
    assert events[1:] == [b"data: [DONE]"]
    assert (relay.tokens.prompt, relay.tokens.completion) == (3, 4)


def test_engine_error_bodies_take_the_openai_shape() -> None:
    flat = json.loads(engine_error_body(400, b'{"object":"error","message":"bad","code":400}'))
    text = json.loads(engine_error_body(500, b"Internal Server Error"))
    assert flat["error"]["message"] == "bad"
    assert flat["error"]["source"] == text["error"]["source"] == "engine"
    assert text["error"]["type"] == "server_error"


def test_histogram_renders_cumulative_buckets() -> None:
    metrics = GatewayMetrics()
    for value in (0.001, 0.02, 100.0):
        metrics.e2e.observe(("d", "m", ""), value)
    text = metrics.render()
    assert 'corral_gateway_e2e_seconds_bucket{deployment="d",model="m",key="",le="0.005"} 1' in text
    assert 'corral_gateway_e2e_seconds_bucket{deployment="d",model="m",key="",le="0.025"} 2' in text
    assert 'corral_gateway_e2e_seconds_bucket{deployment="d",model="m",key="",le="+Inf"} 3' in text
    assert 'corral_gateway_e2e_seconds_count{deployment="d",model="m",key=""} 3' in text
