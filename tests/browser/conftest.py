"""Playwright (sync API) driving Debian's Chromium against a real `teeka serve` (`live_server`).

* One browser for the folder (package scope), a fresh context per test: no cookie, no cache.
  Citizen contexts have a 360 x 740 viewport, a small phone.
* The sync API runs its own asyncio loop and marks it as running between calls (greenlets), so
  no pytest-asyncio fixture can run while the browser is open. The tests here are plain `def`
  tests that use only synchronous fixtures; `_clean` (tests/conftest.py, async, for the
  in-process app's database) is replaced by a no-op: these tests use the live server's own
  database and leave it alone. The browser is closed when the folder is done, before the next
  folder's async tests run.
* Each test works with its own new mobile number and photo-ID numbers, so tests do not meet.
* Screenshots go to test-artifacts/screenshots/ (git-ignored); axe-core results for every
  page checked go to test-artifacts/axe/.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
AXE_RESULTS = ARTIFACTS / "axe"
AXE_JS = HERE / "vendor" / "axe.min.js"

CHROMIUM = os.environ.get("TEEKA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
DEMO_PASSWORD = "teeka-demo-2021"  # the demo data's staff password (src/teeka/demo.py)
TIMEOUT_MS = 15_000


def engine() -> str:
    """'pg' or 'sqlite': screenshots of both runs are kept apart."""
    return "pg" if os.environ.get("TEEKA_TEST_DATABASE_URL", "").startswith("postgresql") \
        else "sqlite"


# ---------------------------------------------------------------- fixtures: browser, contexts


@pytest.fixture
def _clean() -> Iterator[None]:
    """Replaces tests/conftest.py's async `_clean`: see the module docstring."""
    yield


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


NewContext = Callable[..., BrowserContext]


@pytest.fixture
def new_context(browser: Browser, live_server: str) -> Iterator[NewContext]:
    """Make a fresh context (closed after the test): phone-sized unless told otherwise."""
    made: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", PHONE)
        options.setdefault("base_url", live_server)
        options.setdefault("locale", "hi-IN")
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield make
    for c in made:
        c.close()


@pytest.fixture
def page(new_context: NewContext) -> Page:
    """A citizen's phone: 360 x 740, JavaScript on, nothing stored."""
    return new_context().new_page()


@pytest.fixture
def nojs_page(new_context: NewContext) -> Page:
    """The same phone with JavaScript switched off."""
    return new_context(java_script_enabled=False).new_page()


# ---------------------------------------------------------------- screenshots


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page as test-artifacts/screenshots/<engine>/<name>.png."""
    path = SCREENSHOTS / engine() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


# ---------------------------------------------------------------- people and numbers

_rng = random.Random()


def new_mobile() -> str:
    """A 10-digit Indian mobile number not used before in this run (with high probability)."""
    return str(_rng.randint(6, 9)) + f"{_rng.randrange(10**9):09d}"


def new_aadhaar() -> str:
    return str(_rng.randint(2, 9)) + f"{_rng.randrange(10**11):011d}"


# ---------------------------------------------------------------- the local SMS outbox


def outbox(base_url: str) -> list[dict[str, str]]:
    """/dev/outbox.json: [{"to", "text", "created_at"}], newest first."""
    r = httpx.get(f"{base_url}/dev/outbox.json", timeout=10)
    r.raise_for_status()
    messages: list[dict[str, str]] = r.json()
    return messages


def messages_to(base_url: str, mobile: str) -> list[dict[str, str]]:
    return [m for m in outbox(base_url) if str(m.get("to", "")).endswith(mobile[-10:])]


def wait_for_sms(base_url: str, mobile: str, *, after: int, pattern: str = r"\b(\d{6})\b",
                 timeout: float = 15.0) -> re.Match[str]:
    """Wait until the number has more than `after` messages and the newest matches `pattern`."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        seen = messages_to(base_url, mobile)
        if len(seen) > after:
            m = re.search(pattern, seen[0].get("text", ""))
            if m:
                return m
        time.sleep(0.1)
    raise AssertionError(f"no SMS matching {pattern!r} for {mobile[-4:]} in {timeout}s: "
                         f"{[s.get('text') for s in seen[:3]]}")


# ---------------------------------------------------------------- signing in


def main_form(page: Page, action: str | None = None) -> Any:
    """The POST form in <main> (the header has a log-out form too), by its action if given."""
    sel = "main form[method=post]" + (f'[action="{action}"]' if action else "")
    return page.locator(sel)


def submit(page: Page, action: str | None = None) -> None:
    """Press the form's submit button and wait for the page that answers."""
    form = main_form(page, action)
    with page.expect_navigation():
        form.locator("button[type=submit], input[type=submit]").first.click()


def otp_login(page: Page, base_url: str, mobile: str, *, shots: str | None = None) -> None:
    """On /login (perhaps sent there by a page that needs a login): the mobile number, then the
    OTP read from the local outbox; ends where the login page was told to go next (/me)."""
    assert "/login" in page.url, page.url
    if shots:
        screenshot(page, f"{shots}-login")
    before = len(messages_to(base_url, mobile))
    page.fill("#mobile", mobile)
    submit(page, "/login")
    assert "/login/otp" in page.url, page.url
    page.fill("#otp", wait_for_sms(base_url, mobile, after=before)[1])
    if shots:
        screenshot(page, f"{shots}-otp")
    submit(page, "/login/otp")
    assert "/login" not in page.url, page.url


def citizen_login(page: Page, base_url: str, mobile: str, *, shots: str | None = None) -> None:
    """Log in from the start: /login, mobile number, OTP; ends on /me."""
    page.goto("/login")
    otp_login(page, base_url, mobile, shots=shots)
    assert re.search(r"/me(\?|$)", page.url), page.url


@dataclass
class StaffKeys:
    """TOTP secrets enrolled in this run's live server, and the last time step each user used
    (the server refuses a code twice in one 30-second step); the signed-in cookies of each
    user, so that a second test reuses the sign-in instead of waiting for a new step."""

    secrets: dict[str, str] = field(default_factory=dict)
    last_step: dict[str, int] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def staff_keys(live_server: str) -> StaffKeys:
    return StaffKeys()


def staff_sign_in(page: Page, keys: StaffKeys, username: str, *, shots: str | None = None
                  ) -> None:
    """Password, then the TOTP code (enrolling at the first sign-in); ends on the role's page."""
    page.goto("/staff/login")
    if shots:
        screenshot(page, f"{shots}-staff-login")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    submit(page, "/staff/login")
    assert "/staff/second-factor" in page.url, page.url
    enrol = page.locator("#totp-secret")
    if enrol.count():
        keys.secrets[username] = enrol.inner_text().strip()
        if shots:
            screenshot(page, f"{shots}-staff-enrol")
    secret = keys.secrets[username]
    step = int(time.time()) // 30
    while step <= keys.last_step.get(username, -1):
        time.sleep(0.5)
        step = int(time.time()) // 30
    code = pyotp.TOTP(secret).now()
    keys.last_step[username] = int(time.time()) // 30
    page.fill("#code", code)
    submit(page, "/staff/second-factor")
    assert "/staff/second-factor" not in page.url and "/staff/login" not in page.url, page.url


StaffPageFactory = Callable[..., Page]


@pytest.fixture
def staff_page(new_context: NewContext, staff_keys: StaffKeys) -> StaffPageFactory:
    """A desktop-sized page signed in as the demo staff user `username` (the sign-in done once
    per run and user, then reused through the cookies)."""

    def make(username: str, *, viewport: dict[str, int] | None = None,
             shots: str | None = None) -> Page:
        state = staff_keys.states.get(username)
        context = new_context(viewport=viewport or DESKTOP,
                              **({"storage_state": state} if state else {}))
        page = context.new_page()
        if state is None:
            staff_sign_in(page, staff_keys, username, shots=shots)
            staff_keys.states[username] = context.storage_state()
        return page

    return make


# ---------------------------------------------------------------- accessibility (axe-core)

SERIOUS = ("serious", "critical")


def axe_violations(page: Page, name: str) -> list[dict[str, Any]]:
    """Run axe-core on the page; save the full list of violations to test-artifacts/axe/; return
    those of impact serious or critical. The script is evaluated through the DevTools protocol,
    which the page's Content-Security-Policy (script-src 'self') does not govern."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;void 0")
    result = page.evaluate(
        """async () => {
             const r = await axe.run(document, {resultTypes: ['violations']});
             return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map(n => ({target: n.target, html: n.html.slice(0, 300),
                                        summary: n.failureSummary}))}));
           }""")
    AXE_RESULTS.mkdir(parents=True, exist_ok=True)
    (AXE_RESULTS / f"{engine()}-{name}.json").write_text(
        json.dumps({"url": page.url, "violations": result}, ensure_ascii=False, indent=1),
        encoding="utf-8")
    return [v for v in result if v.get("impact") in SERIOUS]


def describe(violations: list[dict[str, Any]]) -> str:
    return "; ".join(f"{v['id']} ({v['impact']}): {v['help']} at "
                     f"{[n['target'] for n in v['nodes']][:4]}" for v in violations)


def assert_accessible(page: Page, name: str) -> None:
    bad = axe_violations(page, name)
    assert not bad, f"axe on {name} ({page.url}): {describe(bad)}"


# ---------------------------------------------------------------- bytes on the wire


@dataclass
class Transfer:
    url: str
    kind: str
    encoding: str
    body: int
    headers: int

    @property
    def total(self) -> int:
        return self.body + self.headers


def measure(context: BrowserContext, path: str) -> tuple[Page, list[Transfer]]:
    """Open `path` in a new page of `context` (use a fresh context: a cold cache) and return the
    page and what came over the wire for the document and its stylesheets: the encoded
    (compressed) body and the response headers, as Chromium counted them. Fonts, images and
    scripts are left aside."""
    page = context.new_page()
    responses = []
    page.on("response", lambda r: responses.append(r))
    page.goto(path, wait_until="load")
    out = []
    for r in responses:
        kind = r.request.resource_type
        if kind not in ("document", "stylesheet"):
            continue
        sizes = r.request.sizes()
        out.append(Transfer(url=r.url, kind=kind,
                            encoding=r.headers.get("content-encoding", ""),
                            body=int(sizes["responseBodySize"]),
                            headers=int(sizes["responseHeadersSize"])))
    return page, out
