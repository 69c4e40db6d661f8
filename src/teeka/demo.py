"""A small, deterministic demo: three districts of Chhattisgarh, seven centres, two vaccines, a week
of sessions and four staff logins. Idempotent: loading again adds only what is missing (so a
later day tops the week up) and duplicates nothing.

DEMO ONLY: every demo login has the password "teeka-demo-2021". Refused when
TEEKA_ENVIRONMENT=production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka import errors
from teeka.auth.actor import Actor
from teeka.auth.service import create_staff
from teeka.centre.schemas import CentreCreate, SessionCreate, SlotCapacity
from teeka.centre.service import create_centre, publish_session
from teeka.config import Settings
from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import (
    Block,
    Centre,
    District,
    Role,
    StaffUser,
    State,
    VaccinationSession,
    Vaccine,
    VaccineInterval,
)

DEMO_PASSWORD = "teeka-demo-2021"  # noqa: S105  (demo only, by design; see the docstring)
DAYS = 7
SLOTS = ("09:00AM-11:00AM", "11:00AM-01:00PM", "02:00PM-04:00PM")
SHARES = {"frontline": 20, "aay": 12, "bpl": 52, "apl": 16}
RELEASE = time(15, 0)

STATE = (7, "Chhattisgarh", "छत्तीसगढ़")
DISTRICTS = [(109, "Raipur", "रायपुर"), (119, "Durg", "दुर्ग"), (116, "Bilaspur", "बिलासपुर")]
BLOCKS = {
    109: [("Raipur Urban", "रायपुर शहरी"), ("Dharsiwa", "धरसींवा")],
    119: [("Durg", "दुर्ग"), ("Patan", "पाटन")],
    116: [("Bilha", "बिल्हा"), ("Takhatpur", "तखतपुर")],
}
# code, name, manufacturer, doses, precaution after days, (dose 2 interval min, max)
VACCINES = [
    ("COVISHIELD", "Covishield", "Serum Institute of India", 2, 270, (84, 112)),
    ("COVAXIN", "Covaxin", "Bharat Biotech", 2, None, (28, 42)),
]


@dataclass(frozen=True)
class _Sessions:
    """What a centre publishes every day: (vaccine, min_age, max_age) bands, and whether its
    18-44 sessions carry the priority shares of the High Court's order."""

    bands: tuple[tuple[str, int, int | None], ...]
    shares: bool = False


@dataclass(frozen=True)
class _Centre:
    district_id: int
    block: str
    name_en: str
    name_hi: str
    address_en: str
    address_hi: str
    pincode: int
    lat: float
    long: float
    sessions: _Sessions
    fees: tuple[tuple[str, int], ...] = ()  # a paid centre's fee per vaccine, in rupees


_PUBLIC = _Sessions(bands=(("COVISHIELD", 18, 44), ("COVISHIELD", 45, None)), shares=True)
_UPHC = _Sessions(bands=(("COVAXIN", 18, 44), ("COVISHIELD", 45, None)))
CENTRES = [
    _Centre(109, "Raipur Urban", "District Hospital Pandri", "जिला अस्पताल पंडरी",
            "Pandri, Raipur", "पंडरी, रायपुर", 492004, 21.2497, 81.6525, _PUBLIC),
    _Centre(109, "Raipur Urban", "Aarogya Hospital Shankar Nagar (Private)",
            "आरोग्य अस्पताल शंकर नगर (निजी)", "Shankar Nagar, Raipur", "शंकर नगर, रायपुर",
            492007, 21.2560, 81.6640,
            _Sessions(bands=(("COVISHIELD", 18, None), ("COVAXIN", 18, None))),
            fees=(("COVISHIELD", 780), ("COVAXIN", 1410))),
    _Centre(109, "Dharsiwa", "PHC Mana Camp", "प्राथमिक स्वास्थ्य केंद्र माना कैंप",
            "Mana Camp, Raipur", "माना कैंप, रायपुर", 492015, 21.1870, 81.7290, _UPHC),
    _Centre(119, "Durg", "District Hospital Durg", "जिला अस्पताल दुर्ग",
            "Civil Lines, Durg", "सिविल लाइंस, दुर्ग", 491001, 21.1904, 81.2849, _PUBLIC),
    _Centre(119, "Durg", "UPHC Padmanabhpur", "शहरी प्राथमिक स्वास्थ्य केंद्र पद्मनाभपुर",
            "Padmanabhpur, Durg", "पद्मनाभपुर, दुर्ग", 491001, 21.2010, 81.2950, _UPHC),
    _Centre(116, "Bilha", "District Hospital Bilaspur", "जिला अस्पताल बिलासपुर",
            "Link Road, Bilaspur", "लिंक रोड, बिलासपुर", 495001, 22.0797, 82.1391, _PUBLIC),
    _Centre(116, "Bilha", "UPHC Sarkanda", "शहरी प्राथमिक स्वास्थ्य केंद्र सरकंडा",
            "Sarkanda, Bilaspur", "सरकंडा, बिलासपुर", 495006, 22.0650, 82.1580, _UPHC),
]
# username, name, role, district id, index of the centre in CENTRES
STAFF = [
    ("admin", "State Administrator", Role.STATE_ADMIN, None, None),
    ("raipur", "Raipur District Administrator", Role.DISTRICT_ADMIN, 109, None),
    ("helpdesk", "Raipur Help Desk", Role.HELPDESK, 109, None),
    ("vaccinator", "Vaccinator, District Hospital Pandri", Role.VACCINATOR, None, 0),
]


def _slots(min_age: int) -> list[SlotCapacity]:
    """Places per slot: the 18-44 band mostly first doses; 45+ also second and precaution."""
    if min_age < 45:
        return [SlotCapacity(label=s, dose1=30, dose2=10) for s in SLOTS]
    return [SlotCapacity(label=s, dose1=20, dose2=20, precaution=10) for s in SLOTS]


async def _geography(db: AsyncSession, added: dict[str, int]) -> dict[tuple[int, str], int]:
    if await db.get(State, STATE[0]) is None:
        db.add(State(id=STATE[0], name_en=STATE[1], name_hi=STATE[2]))
        await db.flush()
    for district_id, name_en, name_hi in DISTRICTS:
        if await db.get(District, district_id) is None:
            db.add(District(id=district_id, state_id=STATE[0], name_en=name_en, name_hi=name_hi))
            added["districts"] += 1
    await db.flush()
    blocks: dict[tuple[int, str], int] = {}
    for district_id, names in BLOCKS.items():
        for name_en, name_hi in names:
            block = (await db.execute(select(Block).where(
                Block.district_id == district_id, Block.name_en == name_en))).scalars().first()
            if block is None:
                block = Block(district_id=district_id, name_en=name_en, name_hi=name_hi)
                db.add(block)
                await db.flush()
                added["blocks"] += 1
            blocks[district_id, name_en] = block.id
    return blocks


async def _vaccines(db: AsyncSession, added: dict[str, int]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for code, name, maker, doses, precaution, (low, high) in VACCINES:
        vaccine = (await db.execute(select(Vaccine).where(Vaccine.code == code))
                   ).scalar_one_or_none()
        if vaccine is None:
            vaccine = Vaccine(code=code, name=name, manufacturer=maker, doses=doses, min_age=18,
                              precaution_after_days=precaution)
            db.add(vaccine)
            await db.flush()
            db.add(VaccineInterval(vaccine_id=vaccine.id, dose_number=2, min_days=low,
                                   max_days=high))
            added["vaccines"] += 1
        ids[code] = vaccine.id
    await db.flush()
    return ids


async def _staff(db: AsyncSession, username: str) -> StaffUser | None:
    return (await db.execute(select(StaffUser).where(StaffUser.username == username))
            ).scalar_one_or_none()


async def _add_staff(db: AsyncSession, added: dict[str, int], centre_ids: list[int],
                     only: set[str]) -> None:
    for username, name, role, district_id, centre in STAFF:
        if username not in only or await _staff(db, username) is not None:
            continue
        await create_staff(db, username=username, password=DEMO_PASSWORD, name=name, role=role,
                           district_id=district_id,
                           centre_id=None if centre is None else centre_ids[centre],
                           actor="demo")
        added["staff"] += 1


async def _state_admin(db: AsyncSession) -> Actor:
    admin = await _staff(db, "admin")
    if admin is None or admin.role != Role.STATE_ADMIN or not admin.active:
        raise errors.Invalid(detail="the demo user 'admin' is not an active state administrator")
    return Actor(kind="staff", id=admin.id, role=admin.role)


async def _centres(db: AsyncSession, actor: Actor, blocks: dict[tuple[int, str], int],
                   added: dict[str, int]) -> list[int]:
    ids = []
    for c in CENTRES:
        centre = (await db.execute(select(Centre).where(
            Centre.district_id == c.district_id, Centre.name_en == c.name_en))).scalars().first()
        if centre is None:
            centre = await create_centre(db, actor=actor, data=CentreCreate(
                district_id=c.district_id, block_id=blocks[c.district_id, c.block],
                name_en=c.name_en, name_hi=c.name_hi, address_en=c.address_en,
                address_hi=c.address_hi, pincode=c.pincode, lat=c.lat, long=c.long,
                fee_type="Paid" if c.fees else "Free", fees=dict(c.fees),
                opens_at=time(9), closes_at=time(17)))
            added["centres"] += 1
        ids.append(centre.id)
    return ids


async def _sessions(db: AsyncSession, actor: Actor, centre_ids: list[int],
                    vaccine_ids: dict[str, int], added: dict[str, int]) -> None:
    today = clock.today()
    have = {tuple(r) for r in (await db.execute(
        select(VaccinationSession.centre_id, VaccinationSession.date,
               VaccinationSession.vaccine_id, VaccinationSession.min_age)
        .where(VaccinationSession.centre_id.in_(centre_ids),
               VaccinationSession.date >= today)))}
    for offset in range(DAYS):
        day = today + timedelta(days=offset)
        for c, centre_id in zip(CENTRES, centre_ids, strict=True):
            for code, min_age, max_age in c.sessions.bands:
                if (centre_id, day, vaccine_ids[code], min_age) in have:
                    continue
                shared = c.sessions.shares and max_age is not None
                await publish_session(db, actor=actor, data=SessionCreate(
                    centre_id=centre_id, date=day, vaccine=code, min_age=min_age,
                    max_age=max_age, walkin_allowance=10 if shared else 5,
                    slots=_slots(min_age), shares=SHARES if shared else {},
                    share_release_time=RELEASE if shared else None))
                added["sessions"] += 1


async def load_demo(maker: async_sessionmaker[AsyncSession], settings: Settings
                    ) -> dict[str, int]:
    """Load (or top up) the demo data in one unit of work; returns what was added."""
    if not settings.is_development:
        raise errors.Invalid(detail="demo data is for development only "
                                    f"(TEEKA_ENVIRONMENT={settings.environment})")
    added = dict.fromkeys(("districts", "blocks", "vaccines", "centres", "staff", "sessions"), 0)
    async with session_scope(maker) as db:
        blocks = await _geography(db, added)
        vaccine_ids = await _vaccines(db, added)
        await _add_staff(db, added, [], only={"admin"})
        actor = await _state_admin(db)
        centre_ids = await _centres(db, actor, blocks, added)
        await _add_staff(db, added, centre_ids, only={u for u, *_ in STAFF} - {"admin"})
        await _sessions(db, actor, centre_ids, vaccine_ids, added)
    return added
