"""Test data made through the real tables and services (no mocks)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import sys
import time as time_module
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka.auth.actor import Actor
from teeka.auth.service import hash_password, staff_token
from teeka.centre.schemas import SessionCreate, SlotCapacity
from teeka.centre.service import publish_session
from teeka.config import Settings
from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import (
    Block,
    Centre,
    District,
    Role,
    SessionSlot,
    StaffUser,
    State,
    Vaccine,
    VaccineInterval,
)
from teeka.worker import deliver_due

PASSWORD = "correct horse battery"
_mobiles = itertools.count(9000000001)
_ids = itertools.count(234500000001)


@lru_cache
def password_hash() -> str:
    return hash_password(PASSWORD)


def next_mobile() -> str:
    return str(next(_mobiles))


def next_aadhaar() -> str:
    return str(next(_ids))


@dataclass
class World:
    settings: Settings
    covishield: int = 0
    covaxin: int = 0
    raipur: int = 109
    balod: int = 110
    centre_a: int = 0  # Raipur
    centre_b: int = 0  # Raipur
    centre_c: int = 0  # Balod
    staff: dict[str, StaffUser] = field(default_factory=dict)

    def token(self, who: str) -> str:
        return staff_token(self.settings, self.staff[who])

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(who)}"}

    def actor(self, who: str) -> Actor:
        s = self.staff[who]
        return Actor(kind="staff", id=s.id, role=s.role, district_id=s.district_id,
                     centre_id=s.centre_id)


async def make_world(maker: async_sessionmaker[AsyncSession], settings: Settings) -> World:
    w = World(settings=settings)
    async with session_scope(maker) as db:
        db.add(State(id=7, name_en="Chhattisgarh", name_hi="छत्तीसगढ़"))
        await db.flush()
        db.add_all([District(id=109, state_id=7, name_en="Raipur", name_hi="रायपुर"),
                    District(id=110, state_id=7, name_en="Balod", name_hi="बालोद")])
        await db.flush()
        b1 = Block(district_id=109, name_en="Raipur Urban", name_hi="रायपुर शहरी")
        b2 = Block(district_id=110, name_en="Gunderdehi", name_hi="गुंडरदेही")
        cs = Vaccine(code="COVISHIELD", name="Covishield", manufacturer="Serum Institute of India",
                     doses=2, min_age=18, precaution_after_days=270)
        cx = Vaccine(code="COVAXIN", name="Covaxin", manufacturer="Bharat Biotech", doses=2,
                     min_age=18)
        db.add_all([b1, b2, cs, cx])
        await db.flush()
        db.add_all([VaccineInterval(vaccine_id=cs.id, dose_number=2, min_days=84, max_days=112),
                    VaccineInterval(vaccine_id=cx.id, dose_number=2, min_days=28, max_days=42)])
        centres = []
        for i, (district, block, pin) in enumerate(
                [(109, b1.id, 492001), (109, b1.id, 492001), (110, b2.id, 491226)]):
            c = Centre(district_id=district, block_id=block, name_en=f"Centre {'ABC'[i]}",
                       name_hi=f"केंद्र {'अबस'[i]}", address_en="Main Road",
                       address_hi="मुख्य मार्ग", pincode=pin, lat=21.25 + i / 100,
                       long=81.63, fee_type="Free", opens_at=time(9), closes_at=time(17),
                       active=True)
            db.add(c)
            centres.append(c)
        await db.flush()
        w.covishield, w.covaxin = cs.id, cx.id
        w.centre_a, w.centre_b, w.centre_c = (c.id for c in centres)
        now = clock.now()
        for name, role, district, centre in [
            ("state", Role.STATE_ADMIN, None, None),
            ("raipur_admin", Role.DISTRICT_ADMIN, 109, None),
            ("balod_admin", Role.DISTRICT_ADMIN, 110, None),
            ("helpdesk", Role.HELPDESK, 109, None),
            ("vaccinator_a", Role.VACCINATOR, None, w.centre_a),
            ("vaccinator_c", Role.VACCINATOR, None, w.centre_c),
        ]:
            s = StaffUser(username=name, name=name.title(), password_hash=password_hash(),
                          role=role, district_id=district, centre_id=centre, active=True,
                          created_at=now)
            db.add(s)
            w.staff[name] = s
        await db.flush()
    return w


async def publish(maker: async_sessionmaker[AsyncSession], w: World, *, centre_id: int,
                  day: date | None = None, vaccine: str = "COVISHIELD", dose1: int = 10,
                  dose2: int = 0, precaution: int = 0, slots: tuple[str, ...] = ("09:00AM-11:00AM",),
                  min_age: int = 18, max_age: int | None = None, shares: dict[str, int] | None = None,
                  share_release_time: time | None = None, walkins: int = 0) -> str:
    async with session_scope(maker) as db:
        vs = await publish_session(db, actor=w.actor("state"), data=SessionCreate(
            centre_id=centre_id, date=day or clock.today() + timedelta(days=1), vaccine=vaccine,
            min_age=min_age, max_age=max_age, walkin_allowance=walkins,
            slots=[SlotCapacity(label=s, dose1=dose1, dose2=dose2, precaution=precaution)
                   for s in slots],
            shares=shares or {}, share_release_time=share_release_time))
        return vs.id


async def slot_of(maker: async_sessionmaker[AsyncSession], session_id: str) -> int:
    """The id of the one slot of a session published with `publish` (one slot)."""
    async with session_scope(maker) as db:
        return int((await db.execute(select(SessionSlot.id).where(
            SessionSlot.session_id == session_id))).scalar_one())


async def latest_sms(client: httpx.AsyncClient, maker: async_sessionmaker[AsyncSession],
                     settings: Settings, to: str) -> str:
    await deliver_due(maker, settings)
    r = await client.get("/dev/outbox.json")
    r.raise_for_status()
    return next(m["text"] for m in r.json() if m["to"] == to)


async def login_citizen(client: httpx.AsyncClient, maker: async_sessionmaker[AsyncSession],
                        settings: Settings, mobile: str | None = None) -> dict[str, str]:
    import re

    mobile = mobile or next_mobile()
    r = await client.post("/api/v1/auth/otp", json={"mobile": mobile})
    assert r.status_code == 200, r.text
    txn = r.json()["txn_id"]
    text = await latest_sms(client, maker, settings, mobile)
    code = re.search(r"\b(\d{6})\b", text)
    assert code, text
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": code[1]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def add_beneficiary(client: httpx.AsyncClient, headers: dict[str, str], *,
                          name: str = "Asha Verma", birth_year: int = 1980,
                          priority_group: str = "none") -> str:
    r = await client.post("/api/v1/beneficiaries", headers=headers, json={
        "name": name, "birth_year": birth_year, "gender": "female", "id_type": "aadhaar",
        "id_number": next_aadhaar(), "priority_group": priority_group})
    assert r.status_code == 201, r.text
    ref: str = r.json()["reference_id"]
    return ref


async def bulk_citizens(maker: async_sessionmaker[AsyncSession], settings: Settings, n: int,
                        *, birth_year: int = 1980) -> list[tuple[dict[str, str], str]]:
    """n accounts with one beneficiary each, made directly in the tables (for races, where
    the OTP round trips are not what is being tested). Returns (auth headers, reference id)."""
    from teeka.auth.service import citizen_token
    from teeka.kit import ids
    from teeka.models import Account, Beneficiary

    out = []
    async with session_scope(maker) as db:
        now = clock.now()
        for i in range(n):
            account = Account(mobile=next_mobile(), created_at=now)
            db.add(account)
            await db.flush()
            person = Beneficiary(reference_id=ids.reference_id(), account_id=account.id,
                                 name=f"Racer {i}", birth_year=birth_year, gender="male",
                                 id_type="aadhaar", id_hash=f"bulk-{account.id}", id_last4="0000",
                                 priority_group="none", secret_code=ids.secret_code(),
                                 created_at=now)
            db.add(person)
            out.append((account.id, person))
        await db.flush()
    return [({"Authorization": f"Bearer {citizen_token(settings, aid)}"}, p.reference_id)
            for aid, p in out]


@contextlib.contextmanager
def running_server(env: dict[str, str], *args: str) -> Iterator[str]:
    """A real `teeka serve` process on a free port with `env` (and more of its options: `args`),
    up and answering /healthz; its base URL. Stopped on leaving (tests that need real
    processes: live pages, shared limits, slow clients)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    teeka = str(Path(sys.executable).parent / "teeka")
    proc = subprocess.Popen([teeka, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "died")
            time_module.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError("`teeka serve` did not stop within 20 s of SIGTERM:\n"
                                 + (err or b"").decode(errors="replace")[-4000:]) from None


@contextlib.asynccontextmanager
async def app_with(settings: Settings, **overrides: object
                   ) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An application of its own with these settings changed and a client through it (no
    network); its engines are closed afterwards."""
    from teeka.app import create_app

    app = create_app(settings.model_copy(update=overrides))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://teeka.test") as client:
            yield app, client
    finally:
        await app.state.engine.dispose()
        if app.state.room_engine is not None:
            await app.state.room_engine.dispose()
