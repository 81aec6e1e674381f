"""One way to name things, for every command: endpoints, deployments and models.

An **endpoint** is a base URL, written with or without `/v1` and a trailing slash
(`http://127.0.0.1:8000`, `http://127.0.0.1:8000/v1/`), or the name of a deployment in
corral.yaml. A name is resolved through the ledger: the live gateway that routes it (what
clients use, migration 0015), else the deployment's live run (an engine `corral deploy`
left running), else the engine port the deployment fixes in corral.yaml (`port:`).
Nothing running is an error that says how to start it.

A **model** is a store name (`org/name`, `org/name@revision`), the short name of a model
corral can pull (`smollm2`), or a folder. A name that matches nothing gets "did you mean"
from the names corral knows, before any recipe is looked up.

    resolve_endpoint("smollm2-135m-instruct", config, ledger_file)  -> EndpointRef(...)
    served_models(endpoint_url, api_key)                            -> ["default", ...]
    model_folder("smollm2", roots)                                  -> the snapshot folder
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from corral.config import CorralConfig, Deployment, StoreRoot
from corral.errors import ConfigError, EndpointError, StoreError
from corral.ledger.db import Ledger, open_ledger
from corral.ledger.gateways import live_gateway
from corral.store import default_model
from corral.store.resolve import find_model, is_path_name, resolve_model

URL_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class EndpointRef:
    """Where a command sends requests. `base_url` is the server root (no `/v1`)."""

    base_url: str
    deployment: str | None = None
    run_id: int | None = None
    via: str = "url"  # "url" (given), "gateway" or "engine" (the ledger), "config" (port:)

    @property
    def v1_url(self) -> str:
        return self.base_url + "/v1"


# -- endpoints -------------------------------------------------------------------------


def is_url(text: str) -> bool:
    return text.strip().startswith(URL_SCHEMES)


def base_url(text: str) -> str:
    """The server root of a URL written any of the usual ways (`/v1`, trailing slashes)."""
    url = text.strip().rstrip("/")
    return url.removesuffix("/v1").rstrip("/")


def resolve_endpoint(text: str, config: CorralConfig, ledger_file: Path) -> EndpointRef:
    """A URL as given (normalized), or a deployment's live gateway or engine."""
    if is_url(text):
        return EndpointRef(base_url(text))
    dep = find_deployment(config, text)
    with open_ledger(ledger_file) as ledger:
        found = _live_endpoint(ledger, dep.name)
    if found is not None:
        return found
    if dep.port is not None:  # the engine's address is fixed in corral.yaml
        host = config.hosts.get(dep.host)
        address = host.address if host else "127.0.0.1"
        return EndpointRef(f"http://{address}:{dep.port}", dep.name, None, "config")
    raise EndpointError(
        f"deployment {dep.name!r} is not running (no live gateway or engine in the ledger)",
        hint=f"start it with `corral serve` or `corral deploy {dep.name}`, or pass its URL",
    )


def _live_endpoint(ledger: Ledger, name: str) -> EndpointRef | None:
    run_id, run_url = live_run(ledger, name)
    gateway = live_gateway(ledger, name)
    if gateway is not None:
        return EndpointRef(base_url(gateway.base_url), name, run_id, "gateway")
    if run_url is not None:
        return EndpointRef(base_url(run_url), name, run_id, "engine")
    return None


def live_run(ledger: Ledger, deployment: str) -> tuple[int | None, str | None]:
    """(id, base URL) of `deployment`'s newest run that has a URL and has not ended."""
    row = ledger.conn.execute(
        "SELECT r.id, r.base_url FROM runs r JOIN deployments d ON d.id = r.deployment_id "
        "WHERE d.name = ? AND r.ended_at IS NULL AND r.base_url IS NOT NULL "
        "ORDER BY r.started_at DESC LIMIT 1",
        (deployment,),
    ).fetchone()
    if row is None:
        return None, None
    return int(row["id"]), str(row["base_url"])


def find_deployment(config: CorralConfig, name: str) -> Deployment:
    """The deployment called `name`; ConfigError with "did you mean" when there is none."""
    names = [d.name for d in config.deployments]
    if name in names:
        return config.deployment(name)
    known = ", ".join(names) or "none"
    raise ConfigError(
        f"no deployment named {name!r} (deployments: {known})",
        hint=did_you_mean(name, names) or "pass a URL, or add the deployment to corral.yaml",
    )


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """`did you mean 'a' or 'b'?` for the closest names, or None when nothing is close."""
    pool = sorted(set(known))
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    lowered = {k.lower(): k for k in pool}
    if not close and name.lower() in lowered:
        close = [lowered[name.lower()]]
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def served_models(url: str, api_key: str | None, *, timeout: float = 10.0) -> list[str]:
    """The model names `GET {url}/v1/models` lists, sending the key when there is one.

    EndpointError names the URL tried: unreachable, a refused or missing key (401), another
    status (its status line, never an HTML page), or an answer that is not a model list."""
    models_url = base_url(url) + "/v1/models"
    try:
        response = httpx.get(models_url, headers=auth_headers(api_key), timeout=timeout)
    except httpx.HTTPError as exc:
        raise EndpointError(
            f"cannot reach {models_url}: {exc or type(exc).__name__}",
            hint="is it running? `corral status` shows what runs and where",
        ) from None
    check_answer(response, models_url, api_key)
    try:
        return [str(card["id"]) for card in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise EndpointError(
            f"{models_url} did not answer with a model list (HTTP {response.status_code}, "
            f"{response.headers.get('content-type', 'no content type')})",
            hint="give the server's base URL, e.g. http://127.0.0.1:8000",
        ) from None


def check_answer(response: httpx.Response, url: str, api_key: str | None) -> None:
    """EndpointError for a non-200 answer, explaining a 401 by whether a key was sent."""
    if response.status_code == 200:
        return
    detail = error_message(response)
    if response.status_code == 401 and not api_key:
        raise EndpointError(
            f"{url} needs an API key: {detail}",
            hint="pass --api-key KEY (or set CORRAL_API_KEY); create one with "
            "`corral keys create --name NAME`",
        )
    if response.status_code == 401:
        raise EndpointError(
            f"{url} refused the API key: {detail}", hint="`corral keys list --all` shows the keys"
        )
    raise EndpointError(f"{url} answered {status_line(response)}: {detail}")


def status_line(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()


def error_message(response: httpx.Response) -> str:
    """The error's message from a JSON body (OpenAI or Anthropic shape), else its status."""
    try:
        body = response.json()
    except ValueError:
        return status_line(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    if isinstance(error, str):
        return error[:300]
    return status_line(response)


def pick_model(wanted: str | None, served: Sequence[str], url: str) -> str:
    """`wanted` if the endpoint serves it (did you mean, if not), else its first model."""
    if not served:
        raise EndpointError(f"{url} serves no model", hint="is the engine still starting?")
    if wanted is None:
        return served[0]
    if wanted in served:
        return wanted
    raise EndpointError(
        f"{url} does not serve {wanted!r} (it serves: {', '.join(served)})",
        hint=did_you_mean(wanted, served) or "pass --model with one of those names",
    )


# -- models ------------------------------------------------------------------------------


def store_name(name: str) -> str:
    """A short name corral can pull (`smollm2`) as its store name; anything else as is."""
    wheel = default_model.WHEEL_MODELS.get(name.strip().lower())
    return wheel.repo_id if wheel is not None else name


def model_folder(
    name: str, roots: Sequence[StoreRoot | Path | str], *, complete: bool = True
) -> Path:
    """The folder of a store name, short name or folder; StoreError with "did you mean".

    `complete=False` skips the missing-blob check (for `models verify`, which reports it)."""
    lookup = resolve_model if complete else find_model
    try:
        return lookup(store_name(name), roots)
    except StoreError as exc:
        if not is_path_name(name) and not (exc.hint or "").startswith("did you mean"):
            exc.hint = did_you_mean(name, default_model.WHEEL_MODELS) or exc.hint
        raise


def known_models(roots: Sequence[StoreRoot], extra: Iterable[str] = ()) -> list[str]:
    """Every model name a command could mean: the store's, the short names, `extra`."""
    from corral.store.catalog import known_names

    return sorted({*known_names(roots), *default_model.WHEEL_MODELS, *extra})
