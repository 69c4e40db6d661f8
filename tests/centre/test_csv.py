"""Sessions uploaded as CSV: all or nothing, per-row errors, hostile files refused with 4xx."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import AuditEntry, CapacityBucket, SessionSlot, VaccinationSession
from tests.factories import publish

URL = "/api/v1/admin/sessions/upload"
HEADER = ("centre_id,date,vaccine,min_age,max_age,slot,dose1,dose2,precaution,walkin_allowance,"
          "shares,share_release_time")
SHARES = "frontline:20;aay:12;bpl:52;apl:16"


def day(offset: int = 1, fmt: str = "%d-%m-%Y") -> str:
    return (clock.today() + timedelta(days=offset)).strftime(fmt)


def line(centre: int, when: str | None = None, *, vaccine: str = "COVISHIELD",
         min_age: object = 18, max_age: object = "", slot: str = "09:00AM-11:00AM",
         dose1: object = 10, dose2: object = 0, precaution: object = 0, walkins: object = 0,
         shares: str = "", release: str = "") -> str:
    return ",".join(str(v) for v in (centre, when or day(), vaccine, min_age, max_age, slot, dose1,
                                     dose2, precaution, walkins, shares, release))


def csv_body(*lines: str) -> bytes:
    return ("\n".join((HEADER, *lines)) + "\n").encode()


async def upload(client: httpx.AsyncClient, headers: dict[str, str], body: bytes, *,
                 multipart: bool = False) -> httpx.Response:
    if multipart:
        return await client.post(URL, headers=headers,
                                 files={"file": ("week.csv", body, "text/csv")})
    return await client.post(URL, headers={**headers, "Content-Type": "text/csv"}, content=body)


async def count_sessions(maker: async_sessionmaker[AsyncSession]) -> int:
    async with session_scope(maker) as db:
        return int((await db.execute(select(func.count()).select_from(VaccinationSession)))
                   .scalar_one())


def errors_by_row(r: httpx.Response) -> dict[int, list[str]]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "CsvRejected", body
    return {row["row"]: row["codes"] for row in body["rows"]}


async def buckets(maker: async_sessionmaker[AsyncSession], centre_id: int, when: date
                  ) -> dict[tuple[str, str, str], int]:
    """(slot, dose kind, share) -> capacity for the sessions of a centre on a day."""
    async with session_scope(maker) as db:
        rows = await db.execute(
            select(SessionSlot.label, CapacityBucket.dose_kind, CapacityBucket.share,
                   CapacityBucket.capacity)
            .join(SessionSlot, SessionSlot.id == CapacityBucket.slot_id)
            .join(VaccinationSession, VaccinationSession.id == CapacityBucket.session_id)
            .where(VaccinationSession.centre_id == centre_id, VaccinationSession.date == when))
        return {(r[0], r[1], r[2]): r[3] for r in rows}


async def test_upload_publishes_sessions_with_places_split_by_share(client, world, maker) -> None:
    r = await upload(client, world.headers("raipur_admin"), csv_body(
        line(world.centre_a, max_age=44, dose1=100, dose2=10, walkins=5, shares=SHARES,
             release="15:00"),
        line(world.centre_a, max_age=44, slot="11:00am-01:00pm", dose1=50, walkins=5,
             shares=SHARES, release="15:00"),
        line(world.centre_b, vaccine="covaxin", min_age=45, dose1=7, dose2=3)))
    assert r.status_code == 201, r.text
    assert r.json() == {"sessions_created": 2, "rows": 3}

    tomorrow = clock.today() + timedelta(days=1)
    assert await buckets(maker, world.centre_a, tomorrow) == {
        ("09:00AM-11:00AM", "first", "frontline"): 20, ("09:00AM-11:00AM", "first", "aay"): 12,
        ("09:00AM-11:00AM", "first", "bpl"): 52, ("09:00AM-11:00AM", "first", "apl"): 16,
        # 10 by 20/12/52/16: 2, 1.2, 5.2, 1.6 -> the largest remainder (apl) gets the last place
        ("09:00AM-11:00AM", "second", "frontline"): 2, ("09:00AM-11:00AM", "second", "aay"): 1,
        ("09:00AM-11:00AM", "second", "bpl"): 5, ("09:00AM-11:00AM", "second", "apl"): 2,
        ("11:00AM-01:00PM", "first", "frontline"): 10, ("11:00AM-01:00PM", "first", "aay"): 6,
        ("11:00AM-01:00PM", "first", "bpl"): 26, ("11:00AM-01:00PM", "first", "apl"): 8,
    }
    assert await buckets(maker, world.centre_b, tomorrow) == {
        ("09:00AM-11:00AM", "first", "open"): 7, ("09:00AM-11:00AM", "second", "open"): 3}
    async with session_scope(maker) as db:
        vs = (await db.execute(select(VaccinationSession).where(
            VaccinationSession.centre_id == world.centre_a))).scalar_one()
        assert (vs.min_age, vs.max_age, vs.walkin_allowance) == (18, 44, 5)
        releases = set((await db.execute(select(CapacityBucket.release_at).where(
            CapacityBucket.session_id == vs.id))).scalars())
        assert releases == {clock.local_datetime(tomorrow, 15)}
        actions = list((await db.execute(select(AuditEntry.action))).scalars())
        assert actions.count("centre.session.published") == 2
        assert actions.count("centre.session.imported") == 1


async def test_multipart_upload_with_iso_dates_and_a_byte_order_mark(client, world, maker
                                                                    ) -> None:
    body = b"\xef\xbb\xbf" + csv_body(line(world.centre_a, day(2, "%Y-%m-%d"), dose1=5))
    r = await upload(client, world.headers("raipur_admin"), body, multipart=True)
    assert r.status_code == 201, r.text
    assert r.json() == {"sessions_created": 1, "rows": 1}
    assert await buckets(maker, world.centre_a, clock.today() + timedelta(days=2)) == {
        ("09:00AM-11:00AM", "first", "open"): 5}


async def test_one_bad_row_among_good_ones_creates_nothing(client, world, maker) -> None:
    await publish(maker, world, centre_id=world.centre_a, day=clock.today() + timedelta(days=5))
    before = await count_sessions(maker)
    assert before == 1
    r = await upload(client, world.headers("raipur_admin"), csv_body(
        line(world.centre_a),
        line(world.centre_a, slot="11:00AM-01:00PM"),
        line(world.centre_b, slot="9am to 11am"),  # row 4
        line(world.centre_b, day(2))))
    rows = errors_by_row(r)
    assert rows == {4: ["BadSlot"]}
    assert "09:00AM-11:00AM" in r.json()["rows"][0]["errors"][0]
    assert await count_sessions(maker) == before


async def test_every_bad_row_is_reported_at_once(client, world, maker) -> None:
    r = await upload(client, world.headers("raipur_admin"), csv_body(
        line(world.centre_a, "31-02-2031"),
        line(world.centre_a, day(-1)),
        line(world.centre_a, vaccine="SPUTNIK-X"),
        line(world.centre_a, min_age=45, max_age=44),
        line(world.centre_a, dose1=0),
        line(world.centre_a, shares="aay:50;bpl:40"),
        line(world.centre_a, release="25:00", shares=SHARES),
        line(world.centre_a, release="15:00"),
        line(world.centre_a, min_age="", walkins="-3"),
        line(world.centre_a, dose1="ten")))
    assert errors_by_row(r) == {
        2: ["BadDate"], 3: ["SessionPast"], 4: ["UnknownVaccine"], 5: ["BadAgeBand"],
        6: ["NoPlaces"], 7: ["BadShares"], 8: ["BadTime"], 9: ["BadTime"],
        10: ["Missing", "BadNumber"], 11: ["BadNumber"]}
    assert await count_sessions(maker) == 0


async def test_a_session_refused_by_the_service_rolls_back_those_before_it(client, world,
                                                                           maker) -> None:
    # The rows are fine on their own; the service refuses the second session (already there),
    # after the first was written: the whole file must still leave nothing behind.
    await publish(maker, world, centre_id=world.centre_b)
    r = await upload(client, world.headers("raipur_admin"), csv_body(
        line(world.centre_a), line(world.centre_a, slot="02:00PM-04:00PM"),
        line(world.centre_b)))
    assert errors_by_row(r) == {4: ["Invalid"]}
    assert "already has a session" in r.json()["rows"][0]["errors"][0]
    assert await count_sessions(maker) == 1
    async with session_scope(maker) as db:
        imported = (await db.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "centre.session.published"))).scalar_one()
        assert imported == 1  # only the factory's


async def test_rows_of_one_session_must_agree(client, world, maker) -> None:
    r = await upload(client, world.headers("raipur_admin"), csv_body(
        line(world.centre_a, max_age=44, shares=SHARES),
        line(world.centre_a, max_age=44, shares=SHARES, slot="11:00AM-01:00PM", walkins=3),
        line(world.centre_a, max_age=45, shares="", slot="02:00PM-04:00PM"),
        line(world.centre_a, max_age=44, shares=SHARES, slot="09:00am-11:00am")))
    assert errors_by_row(r) == {3: ["Disagrees"], 4: ["Disagrees", "Disagrees"],
                                5: ["DuplicateSlot"]}
    assert await count_sessions(maker) == 0


async def test_blank_lines_are_skipped_but_counted_as_spreadsheet_rows(client, world, maker
                                                                      ) -> None:
    body = (HEADER + "\r\n" + line(world.centre_a) + "\r\n\r\n,,,,,,,,,,,\r\n"
            + line(world.centre_a, dose1="x") + "\r\n\r\n").encode()
    assert errors_by_row(await upload(client, world.headers("raipur_admin"), body)) == {
        5: ["BadNumber"]}
    good = (HEADER + "\n\n" + line(world.centre_a) + "\n\n").encode()
    r = await upload(client, world.headers("raipur_admin"), good)
    assert r.status_code == 201, r.text
    assert r.json() == {"sessions_created": 1, "rows": 1}


async def test_unknown_centre_is_a_row_error(client, world, maker) -> None:
    r = await upload(client, world.headers("state"), csv_body(line(999999)))
    assert errors_by_row(r) == {2: ["UnknownCentre"]}


async def test_state_admin_imports_for_any_district(client, world, maker) -> None:
    r = await upload(client, world.headers("state"), csv_body(
        line(world.centre_a), line(world.centre_c)))
    assert r.status_code == 201, r.text
    assert await count_sessions(maker) == 2


async def test_only_administrators_upload(client, world, maker) -> None:
    body = csv_body(line(world.centre_a))
    for who in ("helpdesk", "vaccinator_a"):
        r = await upload(client, world.headers(who), body)
        assert r.status_code == 403, (who, r.text)
        # A refused file says nothing more to someone who may not upload at all.
        assert (await upload(client, world.headers(who), b"\xff\xfe")).status_code == 403
    r = await client.post(URL, content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 401, r.text
    assert await count_sessions(maker) == 0


def _many_rows(n: int, centre: int) -> bytes:
    # n distinct sessions: one per age band and day (all valid on their own)
    lines = [line(centre, day(1 + i // 100), min_age=i % 100) for i in range(n)]
    return csv_body(*lines)


HOSTILE: list[tuple[str, object, str, int]] = [
    # (case, body (or a function of the world), expected code, expected row)
    ("not utf-8", lambda w: csv_body(line(w.centre_a)) + b"9,\xff\xfe,x\n", "NotUtf8", 3),
    ("latin-1 name", lambda w: HEADER.encode() + b"\n" + "é".encode("latin-1"), "NotUtf8", 2),
    ("wrong columns", b"name,age,city\nAsha,45,Raipur\n", "BadHeader", 1),
    ("semicolons", HEADER.replace(",", ";").encode() + b"\n", "BadHeader", 1),
    ("no header", lambda w: line(w.centre_a).encode(), "BadHeader", 1),
    ("empty", b"", "BadHeader", 1),
    ("blank lines only", b"\n\n\r\n  \n", "BadHeader", 1),
    ("header only", HEADER.encode() + b"\n\n", "NoRows", 0),
    ("formula", lambda w: csv_body(line(w.centre_a, dose1="=1+1")), "Formula", 2),
    ("at-formula", lambda w: csv_body(line(w.centre_a, vaccine="@SUM(A1)")), "Formula", 2),
    ("huge number", lambda w: csv_body(line(w.centre_a, dose1="9" * 400)), "BadNumber", 2),
    ("huge centre id", lambda w: csv_body(line(99999999999)), "BadNumber", 2),
    ("negative", lambda w: csv_body(line(w.centre_a, dose2="-1")), "BadNumber", 2),
    ("exponent", lambda w: csv_body(line(w.centre_a, dose1="1e3")), "BadNumber", 2),
    ("unicode digits", lambda w: csv_body(line(w.centre_a, dose1="१०")), "BadNumber", 2),
    ("extra cells", lambda w: csv_body(line(w.centre_a) + ",surprise"), "WrongCellCount", 2),
    ("missing cells", lambda w: csv_body(f"{w.centre_a},{day()},COVISHIELD"),
     "WrongCellCount", 2),
    ("bad quoting", lambda w: csv_body(f'{w.centre_a},"{day()}"x,COVISHIELD'), "BadCsv", 2),
    ("huge cell", lambda w: csv_body(f'{w.centre_a},"' + "x" * 300_000 + '"'), "BadCsv", 2),
    ("nul byte", lambda w: csv_body(line(w.centre_a, vaccine="COVI\x00SHIELD")),
     "UnknownVaccine", 2),
    ("workbook", b"PK\x03\x04" + b"\x00" * 100, "NotCsv", 0),
    ("over 1 MB", lambda w: csv_body(*[line(w.centre_a)] * 20_000), "TooLarge", 0),
    ("over 5000 rows", lambda w: _many_rows(5001, w.centre_a), "TooManyRows", 0),
]


@pytest.mark.parametrize(("case", "body", "code", "row"), HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("multipart", [False, True], ids=["body", "multipart"])
async def test_hostile_files_are_refused_with_a_reason(client, world, maker, case, body, code, row,
                                                       multipart) -> None:
    data = body(world) if callable(body) else body
    assert isinstance(data, bytes)
    r = await upload(client, world.headers("raipur_admin"), data, multipart=multipart)
    rows = errors_by_row(r)
    assert code in rows.get(row, []), rows
    assert await count_sessions(maker) == 0


async def test_a_file_that_is_not_csv_by_type_is_refused(client, world) -> None:
    r = await client.post(URL, headers=world.headers("raipur_admin"), json={"rows": []})
    assert errors_by_row(r) == {0: ["NotCsv"]}
    r = await client.post(URL, headers=world.headers("raipur_admin"),
                          files={"other": ("week.csv", b"x", "text/csv")})
    assert errors_by_row(r) == {0: ["NoFile"]}
    r = await client.post(URL, content=b"--xyz\r\nbroken",
                          headers={**world.headers("raipur_admin"),
                                   "Content-Type": "multipart/form-data; boundary=xyz"})
    assert 400 <= r.status_code < 500, r.text


async def test_5000_rows_are_accepted(client, world, maker) -> None:
    r = await upload(client, world.headers("raipur_admin"), _many_rows(5000, world.centre_a))
    assert r.status_code == 201, r.text
    assert r.json() == {"sessions_created": 5000, "rows": 5000}
    assert await count_sessions(maker) == 5000


async def test_a_refusal_names_the_value_it_refuses(client, world, maker) -> None:
    """A slot or share the rules refuse is named in the row's error (it said `slot '{slot}'
    ends before it starts`, naming nothing the district could find)."""
    r = await upload(client, world.headers("raipur_admin"), csv_body(
        line(world.centre_a, slot="11:00AM-09:00AM"),
        line(world.centre_b, shares="bpl:50;bpl:50")))
    errors = {row["row"]: " ".join(row["errors"]) for row in r.json()["rows"]}
    assert "11:00AM-09:00AM" in errors[2] and "{" not in errors[2], errors
    assert "'bpl'" in errors[3] and "{" not in errors[3], errors
