"""Production is the default mode: no outbox page (it would show every OTP to anyone), and the
cookies a page sets, the CSRF seed too, go over HTTPS only. Development (`make run`, the tests)
must be asked for."""

from __future__ import annotations

from teeka.config import Settings
from tests.factories import app_with


def test_production_is_the_default() -> None:
    assert Settings.model_fields["environment"].default == "production"


async def test_production_shows_no_outbox_and_sends_cookies_over_https_only(settings,
                                                                            world) -> None:
    async with app_with(settings, environment="production") as (_, c):
        assert (await c.get("/dev/outbox.json")).status_code == 404
        assert (await c.get("/dev/outbox")).status_code == 404
        r = await c.get("/login")
        assert r.status_code == 200
        seed = [v for v in r.headers.get_list("set-cookie") if v.startswith("teeka_csrf=")]
        assert seed and "secure" in seed[0].lower(), seed
    async with app_with(settings, environment="development") as (_, c):
        assert (await c.get("/dev/outbox.json")).status_code == 200
        r = await c.get("/login")
        seed = [v for v in r.headers.get_list("set-cookie") if v.startswith("teeka_csrf=")]
        assert seed and "secure" not in seed[0].lower(), seed
