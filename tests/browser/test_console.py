"""The web console in a real Chromium, against a gateway serving the real vLLM engine.

Every page renders with no console error; the playground streams an answer from vLLM;
a deployment page shows the phases the ledger holds; a stop from the page is what
/v1/models then says; without a session only the login page is served.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import expect

from corral.ledger import runs
from corral.ledger.db import open_ledger
from tests.browser.conftest import ADMIN_KEY, VIEWER_KEY, Console, Watched, log_in

pytestmark = pytest.mark.integration


def ledger_phases(console: Console, deployment: str) -> list[str]:
    with open_ledger(console.ledger_path) as ledger:
        row = next(r for r in runs.latest_runs(ledger) if r["deployment"] == deployment)
        return [p["name"] for p in runs.phases(ledger, int(row["id"]))]


# -- no session: the login page and nothing else -------------------------------------------
def test_without_a_session_only_the_login_page_is_served(console: Console, page: Watched) -> None:
    for path in ("/ui", "/ui/deployments/toy", "/ui/playground"):
        page.page.context.clear_cookies()
        page.page.goto(console.url + path)
        expect(page.page.locator("form.login input[name=key]")).to_be_visible()
        body = page.page.content()
        assert "toy" not in body
        assert "smollm2" not in body
    for path in ("/ui/api/fleet", "/ui/api/live", "/ui/api/deployments/toy", "/ui/api/report/toy"):
        answer = httpx.get(console.url + path)
        assert answer.status_code == 401, path
        assert answer.json()["error"]["code"] == "no_console_session"
    assert page.clean() == []


def test_a_wrong_key_is_refused_on_the_login_page(console: Console, page: Watched) -> None:
    page.page.goto(console.url + "/ui")
    page.page.fill("input[name=key]", "sk-wrong")
    page.page.click("button[type=submit]")
    expect(page.page.locator(".error")).to_contain_text("not valid")
    assert page.page.context.cookies() == []
    # the refused POST's 401 is the only console message
    assert page.clean(allowed=("401",)) == []


def test_login_sets_a_strict_httponly_cookie_and_no_key_in_the_url(
    console: Console, page: Watched, screenshots: Path
) -> None:
    page.page.context.clear_cookies()
    page.page.goto(console.url + "/ui")
    page.page.screenshot(path=screenshots / "console-login.png")
    log_in(page.page, console.url)
    (cookie,) = page.page.context.cookies()
    assert cookie["name"] == "corral_session"
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert ADMIN_KEY not in cookie["value"]
    assert ADMIN_KEY not in page.page.url
    assert "key" not in page.page.url
    assert page.clean() == []


# -- pages ----------------------------------------------------------------------------------
def test_fleet_page_shows_hosts_states_and_routable_flags(
    console: Console, page: Watched, screenshots: Path
) -> None:
    log_in(page.page, console.url)
    table = page.page.locator("section.host")
    expect(table.locator("h2")).to_have_text("local")
    for name, routable in (("smollm2-135m-instruct", "yes"), ("toy", "yes"), ("cold", "no")):
        row = table.locator(f"tr[data-deployment='{name}']")
        expect(row.locator("td.routable")).to_have_text(routable)
    expect(table.locator("tr[data-deployment='toy']")).to_contain_text("ready")
    expect(table.locator("tr[data-deployment='toy'] button[data-action=stop]")).to_be_visible()
    page.page.screenshot(path=screenshots / "console-fleet.png", full_page=True)
    assert page.clean() == []


def test_deployment_page_shows_the_phases_the_ledger_holds(
    console: Console, page: Watched, screenshots: Path
) -> None:
    phases = ledger_phases(console, "toy")
    assert phases[0] == "launch"
    assert "verify" in phases
    log_in(page.page, console.url)
    page.page.click("a:text-is('toy')")
    shown = page.page.locator("ol.phases .phase-name")
    expect(shown).to_have_text(phases)
    expect(page.page.locator("pre.command")).to_contain_text("scripted_engine.py")
    expect(page.page.locator("table.verify tbody tr").first).to_be_visible()
    page.page.screenshot(path=screenshots / "console-deployment.png", full_page=True)
    assert page.clean() == []


def test_playground_streams_an_answer_from_vllm(
    console: Console, page: Watched, screenshots: Path
) -> None:
    log_in(page.page, console.url)
    page.page.click("nav a:text-is('Playground')")
    page.page.select_option("select[name=model]", "smollm2-135m-instruct")
    page.page.fill("input[name=max_tokens]", "48")
    # Count how often the answer's text changes while it streams.
    page.page.evaluate(
        """() => { window.answerUpdates = 0;
        new MutationObserver(() => { window.answerUpdates += 1; })
          .observe(document.querySelector('.conversation'),
                   {subtree: true, childList: true, characterData: true}); }"""
    )
    page.page.fill("textarea[name=prompt]", "Name three colours of the rainbow.")
    page.page.click("button[type=submit]")
    expect(page.page.locator(".turn-assistant .muted.small")).to_contain_text(
        "completion tokens", timeout=120_000
    )
    answer = page.page.locator(".turn-assistant .answer").inner_text()
    assert answer.strip()
    assert page.page.evaluate("window.answerUpdates") > 3  # it arrived in pieces
    page.page.screenshot(path=screenshots / "console-playground.png", full_page=True)
    assert page.clean() == []


def test_playground_shows_reasoning_apart_from_the_answer(
    console: Console, page: Watched, screenshots: Path
) -> None:
    log_in(page.page, console.url)
    page.page.click("nav a:text-is('Playground')")
    page.page.select_option("select[name=model]", "toy")
    page.page.fill("textarea[name=prompt]", "Think first, then answer.")
    page.page.click("button[type=submit]")
    turn = page.page.locator(".turn-assistant")
    expect(turn.locator(".muted.small")).to_contain_text("completion tokens")
    reasoning = turn.locator(".reasoning p").inner_text()
    answer = turn.locator(".answer").inner_text()
    assert reasoning.strip()
    assert answer.strip()
    assert reasoning.strip() not in answer  # kept apart, not mixed into the answer
    page.page.screenshot(path=screenshots / "console-playground-reasoning.png", full_page=True)
    assert page.clean() == []


def test_playground_shows_a_tool_call_from_vllm(
    console: Console, page: Watched, screenshots: Path
) -> None:
    log_in(page.page, console.url)
    page.page.click("nav a:text-is('Playground')")
    page.page.select_option("select[name=model]", "smollm2-135m-instruct")
    page.page.check("input[name=use_tools]")
    page.page.fill("input[name=tool_choice]", "get_weather")
    page.page.fill("textarea[name=prompt]", "What is the weather in Paris?")
    page.page.click("button[type=submit]")
    call = page.page.locator(".turn-assistant .tool-call")
    expect(call.locator("code")).to_have_text("get_weather", timeout=120_000)
    expect(page.page.locator("button[type=submit]")).to_have_text("send", timeout=120_000)
    arguments = json.loads(call.locator("pre").inner_text())
    assert isinstance(arguments.get("city"), str)  # "strict": true holds vLLM to the schema
    page.page.screenshot(path=screenshots / "console-playground-tools.png", full_page=True)
    assert page.clean() == []


def test_playground_shows_the_gateways_error_for_a_model_that_is_not_routable(
    console: Console, page: Watched
) -> None:
    sdk = openai.OpenAI(base_url=console.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model="cold", messages=[{"role": "user", "content": "hi"}])
    client_sees = raised.value.response.json()["error"]["message"]
    log_in(page.page, console.url)
    page.page.click("nav a:text-is('Playground')")
    page.page.select_option("select[name=model]", "cold")
    page.page.fill("textarea[name=prompt]", "hello?")
    page.page.click("button[type=submit]")
    shown = page.page.locator(".turn-assistant .error")
    expect(shown).to_contain_text(client_sees)
    expect(shown).to_contain_text(str(raised.value.status_code))
    assert page.clean(allowed=(f"status of {raised.value.status_code}",)) == []


def test_live_page_shows_request_rate_ttft_and_tokens(
    console: Console, page: Watched, screenshots: Path
) -> None:
    log_in(page.page, console.url)
    page.page.click("nav a:text-is('Live')")
    sdk = openai.OpenAI(base_url=console.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    for _ in range(3):  # traffic while the page polls: the rates come from two polls
        stream = sdk.chat.completions.create(
            model="toy", messages=[{"role": "user", "content": "go"}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        for _chunk in stream:
            pass
        page.page.wait_for_timeout(1200)
    row = page.page.locator("tr[data-deployment='toy']")
    expect(row).to_be_visible()
    cells = row.locator("td")
    expect(cells.nth(2)).to_have_text(re.compile(r"\d+ ms"), timeout=10_000)
    assert int(cells.nth(4).inner_text().replace(",", "")) >= 3
    expect(page.page.locator("svg.chart polyline").first).to_be_attached()
    page.page.screenshot(path=screenshots / "console-live.png", full_page=True)
    assert page.clean() == []


def test_logbook_renders_corral_report(console: Console, page: Watched, screenshots: Path) -> None:
    log_in(page.page, console.url)
    page.page.click("nav a:text-is('Logbook')")
    page.page.click("a.chip:text-is('toy')")
    report = page.page.locator("article.report")
    expect(report.locator("h1")).to_have_text("toy Deployment")
    expect(report.locator("h2:text-is('Deployment History')")).to_be_visible()
    page.page.screenshot(path=screenshots / "console-logbook.png", full_page=True)
    assert page.clean() == []


# -- actions --------------------------------------------------------------------------------
def test_a_viewer_key_sees_no_actions_and_may_not_act(console: Console, page: Watched) -> None:
    log_in(page.page, console.url, VIEWER_KEY)
    expect(page.page.locator("tr[data-deployment='toy']")).to_contain_text("ready")
    expect(page.page.locator("button[data-action]")).to_have_count(0)
    status = page.page.evaluate(
        """async () => (await fetch('/ui/api/actions/stop/toy',
            {method: 'POST', headers: {'X-Corral-Console': '1'}})).status"""
    )
    assert status == 403
    assert console.models()["toy"]["corral"]["routable"] is True  # type: ignore[index]
    assert page.clean(allowed=("403",)) == []


def test_stop_from_the_console_is_reflected_in_v1_models(console: Console, page: Watched) -> None:
    """Runs last in this module: it stops `toy`."""
    assert console.models()["toy"]["corral"]["routable"] is True  # type: ignore[index]
    log_in(page.page, console.url)
    page.page.on("dialog", lambda dialog: dialog.accept())
    page.page.click("tr[data-deployment='toy'] button[data-action=stop]")
    expect(page.page.locator("tr[data-deployment='toy']")).to_contain_text("stopped")
    card = console.models()["toy"]
    assert json.dumps(card["corral"])
    assert card["corral"]["routable"] is False
    with open_ledger(console.ledger_path) as ledger:
        assert runs.latest_runs(ledger)[0]["state"] == "stopped"
    assert page.clean() == []
