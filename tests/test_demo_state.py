"""`teeka demo --scale state`: the whole of Chhattisgarh, deterministic and idempotent, loaded on
the suite's database (SQLite and PostgreSQL) at its real size once, smaller elsewhere; and the
load-test beneficiaries. The timed one-million load is in docs/BENCHMARKS.md."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from teeka import errors
from teeka.auth.actor import Actor
from teeka.booking.rules import split_capacity
from teeka.booking.service import book_appointment
from teeka.centre.rules import parse_shares
from teeka.citizen.service import register_beneficiary
from teeka.db import Base, session_scope
from teeka.demo import SHARES, load_demo
from teeka.demo_state import (
    DAYS,
    FEES,
    LAT,
    LONG,
    SEED,
    _people,
    centres_by_district,
    load_beneficiaries,
    load_state,
    mobile,
    plan_state,
    reference_id,
)
from teeka.kit import clock, phone
from teeka.models import (
    Account,
    Appointment,
    Beneficiary,
    CapacityBucket,
    Centre,
    CentreFee,
    District,
    SessionSlot,
    VaccinationSession,
    Vaccine,
)
from tests.test_cli import make_env, teeka

NATIONAL_IDS = set(range(109, 137))
NEW_IDS = {1001, 1002, 1003, 1004, 1005}
DEVANAGARI = re.compile(r"[\u0900-\u097F]")
BANDS = {(18, 44), (45, None), (18, None)}


async def table_counts(maker) -> dict[str, int]:
    async with session_scope(maker) as db:
        return {t.name: (await db.execute(select(func.count()).select_from(t))).scalar_one()
                for t in Base.metadata.sorted_tables}


# ----------------------------------------------------------------------------- the plan (pure)

def test_the_plan_is_the_same_for_a_seed_and_looks_like_chhattisgarh() -> None:
    plan = plan_state()
    assert plan == plan_state(SEED)
    assert plan != plan_state(SEED + 1)
    ids = {d for d, _, _ in plan.districts}
    assert len(plan.districts) == 33 and ids == NATIONAL_IDS | NEW_IDS
    assert dict((d, en) for d, en, _ in plan.districts)[109] == "Raipur"
    assert all(DEVANAGARI.search(hi) and not DEVANAGARI.search(en) for _, en, hi in plan.districts)
    assert all(DEVANAGARI.search(hi) for _, _, hi in plan.blocks)
    assert {d for d, _, _ in plan.blocks} == ids and len(plan.blocks) >= 140
    assert len(plan.centres) == sum(centres_by_district().values()) >= 2000
    for c in plan.centres:
        assert re.fullmatch(r"49[0-7]\d{3}", str(c.data.pincode)), c.data
        assert LAT[0] <= c.data.lat <= LAT[1] and LONG[0] <= c.data.long <= LONG[1]
        assert DEVANAGARI.search(c.data.name_hi) and DEVANAGARI.search(c.data.address_hi)
        assert c.data.opens_at < c.data.closes_at
        assert (c.data.fee_type == "Paid") == bool(c.data.fees)
    by_district = Counter((c.district_id, c.data.name_en) for c in plan.centres)
    assert max(by_district.values()) == 1  # a centre's name is unique in its district
    paid = [c for c in plan.centres if c.data.fee_type == "Paid"]
    assert 0.08 <= len(paid) / len(plan.centres) <= 0.12
    assert all(c.data.fees == FEES == {"COVISHIELD": 780, "COVAXIN": 1410} for c in paid)
    assert sum(c.data.name_en.startswith("District Hospital ") for c in plan.centres) == 33
    assert {(b.vaccine, b.min_age, b.max_age) for c in plan.centres for b in c.bands} >= {
        ("COVISHIELD", 18, 44), ("COVISHIELD", 45, None), ("COVISHIELD", 18, None),
        ("COVAXIN", 18, 44), ("COVAXIN", 18, None)}
    # a smaller state for quick tests keeps every kind of centre and session that matters
    small = plan_state(centres_per_district=3)
    assert len(small.centres) == 99 and small.districts == plan.districts
    assert {c.data.fee_type for c in small.centres} == {"Free", "Paid"}


def test_people_are_the_same_however_they_are_drawn() -> None:
    everyone = list(_people(SEED, 0, 60_000))
    assert [p[0] for p in everyone] == list(range(60_000))
    assert list(_people(SEED, 49_990, 50_010)) == everyone[49_990:50_010]
    assert list(_people(SEED + 1, 0, 10)) != everyone[:10]
    groups = Counter(p[6] for p in everyone)
    for group, share in {"frontline": 5, "aay": 12, "bpl": 52, "apl": 16, "none": 15}.items():
        assert abs(groups[group] / len(everyone) * 100 - share) < 1, groups
    assert {p[3] for p in everyone} == {"male", "female", "other"}
    years = [p[2] for p in everyone]
    assert min(years) >= 1935 and max(years) == 2005
    assert len({(p[4], p[5]) for p in everyone}) == len(everyone)  # one document each
    assert all(re.fullmatch(r"[2-9]\d{11}|CGV\d{7}", p[5]) for p in everyone)
    assert reference_id(0) == "99000000000000" and mobile(1) == "6000000001"
    assert phone.normalise_mobile(mobile(12_345)) == mobile(12_345)


# ----------------------------------------------------------------------------- the database

async def test_the_whole_state_loads_and_loading_again_changes_nothing(maker, settings) -> None:
    added = await load_state(maker, settings)
    plan = plan_state()
    assert added["districts"] == 33 and added["blocks"] == len(plan.blocks)
    assert added["centres"] == len(plan.centres) >= 2000
    before = await table_counts(maker)
    assert before["vaccination_session"] == added["sessions"] > 2000 * DAYS
    assert before["capacity_bucket"] == added["buckets"] > 100_000

    today = clock.today()
    async with session_scope(maker) as db:
        districts = (await db.execute(select(District))).scalars().all()
        assert {d.id for d in districts} == NATIONAL_IDS | NEW_IDS
        assert all(d.state_id == 7 and DEVANAGARI.search(d.name_hi) for d in districts)
        assert {d.id: d.name_hi for d in districts}[135] == "कबीरधाम"
        pins = (await db.execute(select(Centre.pincode))).scalars().all()
        assert len(pins) >= 2000 and all(re.fullmatch(r"49\d{4}", str(p)) for p in pins)
        fee_types = Counter((await db.execute(select(Centre.fee_type))).scalars())
        assert fee_types["Free"] > fee_types["Paid"] > 150
        fees = Counter((code, fee) for code, fee in await db.execute(
            select(Vaccine.code, CentreFee.fee).join(Vaccine, Vaccine.id == CentreFee.vaccine_id)))
        assert set(fees) == {("COVISHIELD", 780), ("COVAXIN", 1410)}
        assert fees["COVISHIELD", 780] == fees["COVAXIN", 1410] == fee_types["Paid"]

        sessions = (await db.execute(select(VaccinationSession.id, VaccinationSession.date,
                                            VaccinationSession.min_age,
                                            VaccinationSession.max_age,
                                            Vaccine.code).join(Vaccine))).all()
        assert {s[1] for s in sessions} == {today + timedelta(days=k) for k in range(DAYS)}
        assert {(s[2], s[3]) for s in sessions} == BANDS
        assert {s[4] for s in sessions} == {"COVISHIELD", "COVAXIN"}
        day_of = {s[0]: s[1] for s in sessions}
        labels = set((await db.execute(select(SessionSlot.label))).scalars())
        assert "09:00AM-11:00AM" in labels and all(re.fullmatch(
            r"\d\d:\d\d[AP]M-\d\d:\d\d[AP]M", label) for label in labels)

        # every slot's places per dose kind are split exactly as publish_session splits them
        per_slot: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
        released = 0
        for slot_id, session_id, kind, share, capacity, booked, release_at in (
                await db.execute(select(
                    CapacityBucket.slot_id, CapacityBucket.session_id, CapacityBucket.dose_kind,
                    CapacityBucket.share, CapacityBucket.capacity, CapacityBucket.booked,
                    CapacityBucket.release_at))):
            per_slot[slot_id, kind][share] = capacity
            assert booked == 0
            if share == "open":
                assert release_at is None
            else:
                assert release_at == clock.local_datetime(day_of[session_id], 15)
                released += 1
        assert released > 10_000
        shares = parse_shares("frontline:20;aay:12;bpl:52;apl:16")
        assert {k.value: v for k, v in shares.items()} == SHARES
        for parts in per_slot.values():
            total = sum(parts.values())
            rule = split_capacity(total, shares if "open" not in parts else {})
            assert {s.value: c for s, c in rule.items()} == parts
        assert {kind for _, kind in per_slot} == {"first", "second", "precaution"}

    again = await load_state(maker, settings)
    assert again == dict.fromkeys(added, 0)
    assert await table_counts(maker) == before


async def test_the_state_goes_on_top_of_the_small_demo_and_back(maker, settings) -> None:
    small = await load_demo(maker, settings)
    assert small["districts"] == 3
    added = await load_state(maker, settings, centres_per_district=3)
    assert added["districts"] == 30 and added["vaccines"] == 0  # the demo's are reused
    counts = await table_counts(maker)
    assert counts["district"] == 33 and counts["vaccine"] == 2 and counts["state"] == 1
    async with session_scope(maker) as db:  # the small demo's blocks are reused, not doubled
        raipur = (await db.execute(select(Centre.name_en).where(Centre.district_id == 109))
                  ).scalars().all()
    assert "District Hospital Pandri" in raipur and "District Hospital Raipur" in raipur
    assert counts["block"] == len(plan_state().blocks)
    assert await load_demo(maker, settings) == dict.fromkeys(small, 0)
    assert await load_state(maker, settings, centres_per_district=3) == dict.fromkeys(added, 0)
    assert await table_counts(maker) == counts


async def test_a_later_day_tops_the_week_up(maker, settings) -> None:
    first = await load_state(maker, settings, centres_per_district=2)
    daily = first["sessions"] // DAYS
    clock.shift(timedelta(days=2))
    again = await load_state(maker, settings, centres_per_district=2)
    assert again["sessions"] == 2 * daily and again["centres"] == 0
    assert again["slots"] == 2 * first["slots"] // DAYS


async def test_beneficiaries_load_once_and_top_up(maker, settings) -> None:
    assert await load_beneficiaries(maker, settings, count=500, batch=128) == {
        "accounts": 125, "beneficiaries": 500}

    async def people() -> list[Beneficiary]:
        async with session_scope(maker) as db:
            return list((await db.execute(select(Beneficiary).order_by(Beneficiary.id))
                         ).scalars())

    rows = await people()
    assert len(rows) == 500 and len({p.reference_id for p in rows}) == 500
    assert all(re.fullmatch(r"[1-9]\d{13}", p.reference_id) for p in rows)
    assert len({p.id_hash for p in rows}) == 500 and all(len(p.id_hash or "") == 64 for p in rows)
    assert set(Counter(p.account_id for p in rows).values()) == {4}
    async with session_scope(maker) as db:
        mobiles = (await db.execute(select(Account.mobile))).scalars().all()
    assert len(set(mobiles)) == 125
    assert all(phone.normalise_mobile(m) == m for m in mobiles)

    assert await load_beneficiaries(maker, settings, count=500) == {
        "accounts": 0, "beneficiaries": 0}
    assert await load_beneficiaries(maker, settings, count=600) == {
        "accounts": 25, "beneficiaries": 100}
    assert await load_beneficiaries(maker, settings, count=599) == {
        "accounts": 0, "beneficiaries": 0}
    again = await people()
    assert len(again) == 600 and [p.reference_id for p in again[:500]] == [
        p.reference_id for p in rows]
    assert {p.reference_id for p in again} == {reference_id(i) for i in range(600)}
    # person 550 is the same person whether loaded as part of 600 or topped up
    drawn = list(_people(SEED, 0, 600))[550]
    person = next(p for p in again if p.reference_id == reference_id(550))
    assert (person.name, person.birth_year, person.gender, person.priority_group,
            person.secret_code) == (drawn[1], drawn[2], drawn[3], drawn[6], drawn[7])

    # the documents are hashed as a registration hashes them: the same one is refused
    async with session_scope(maker) as db:
        account = Account(mobile="9123400550", created_at=clock.now())
        db.add(account)
        await db.flush()
        with pytest.raises(errors.DuplicateIdDocument):
            await register_beneficiary(db, settings, actor=Actor(kind="citizen", id=account.id),
                                       name="Test Person", birth_year=1990, gender="female",
                                       id_type=drawn[4], id_number=drawn[5])


async def test_a_load_test_person_books_a_state_session(maker, settings) -> None:
    await load_state(maker, settings, centres_per_district=2)
    await load_beneficiaries(maker, settings, count=40)
    day = clock.today() + timedelta(days=1)
    async with session_scope(maker) as db:
        people = (await db.execute(select(Beneficiary).order_by(Beneficiary.id))).scalars().all()
        person = next(p for p in people if 18 <= day.year - p.birth_year <= 44
                      and p.priority_group == "bpl")
        session_id = (await db.execute(
            select(VaccinationSession.id).where(VaccinationSession.date == day,
                                                VaccinationSession.max_age == 44)
            .join(CapacityBucket, CapacityBucket.session_id == VaccinationSession.id)
            .where(CapacityBucket.share == "bpl").limit(1))).scalar_one()
        await book_appointment(db, actor=Actor(kind="citizen", id=person.account_id or 0),
                               session_id=session_id, slot="09:00AM-11:00AM",
                               beneficiary_refs=[person.reference_id], dose=None,
                               idempotency_key="state-demo-1")
    async with session_scope(maker) as db:
        share = (await db.execute(
            select(CapacityBucket.share).join(Appointment,
                                              Appointment.bucket_id == CapacityBucket.id)
        )).scalar_one()
    assert share == "bpl"


async def test_demo_data_is_refused_outside_development(maker, settings) -> None:
    production = settings.model_copy(update={"environment": "production"})
    with pytest.raises(errors.DomainError):
        await load_state(maker, production, centres_per_district=1)
    with pytest.raises(errors.DomainError):
        await load_beneficiaries(maker, production, count=1)
    with pytest.raises(errors.DomainError):
        await load_beneficiaries(maker, settings, count=-1)
    assert sum((await table_counts(maker)).values()) == 0


def test_the_command_loads_the_state_and_people_on_its_own_sqlite_file(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    teeka(env, "db", "upgrade")
    first = teeka(env, "demo", "--scale", "state", "--beneficiaries", "41")
    assert "33 districts" in first.stdout and "2 vaccines" in first.stdout, first.stdout
    assert f"{len(plan_state().centres)} centres" in first.stdout
    assert "11 accounts, 41 beneficiaries" in first.stdout and "done in" in first.stdout
    second = teeka(env, "demo", "--scale", "STATE", "--beneficiaries", "41")
    assert "0 centres" in second.stdout and "0 sessions" in second.stdout
    assert "0 accounts, 0 beneficiaries" in second.stdout
    small = teeka(env, "demo")  # the small demo on top: its logins, nothing doubled
    assert "0 districts" in small.stdout and "teeka-demo-2021" in small.stdout
    wrong = teeka(env, "demo", "--scale", "country", check=False)
    assert wrong.returncode == 2 and "country" in wrong.stderr
    refused = teeka({**env, "TEEKA_ENVIRONMENT": "production"}, "demo", "--scale", "state",
                    check=False)
    assert refused.returncode == 1 and "development only" in refused.stderr
