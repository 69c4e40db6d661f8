"""A whole state's worth of demo data: `teeka demo --scale state [--beneficiaries N]`.

Chhattisgarh (state 7) with all 33 districts in English and Hindi. The 28 districts of 2021 keep
their national ids 109-136; the five formed in 2022 had no national id and are given 1001-1005
here (Khairagarh-Chhuikhadan-Gandai 1001, Mohla-Manpur-Ambagarh Chowki 1002, Sarangarh-Bilaigarh
1003, Manendragarh-Chirmiri-Bharatpur 1004, Sakti 1005). Blocks are the development blocks of
each district; centres (about 2,100, in proportion to the 2011 census population) are a district
hospital, a community health centre per block, urban PHCs in the district town, primary health
centres in villages and about 10 % paid private hospitals (Covishield 780, Covaxin 1410 rupees),
each with a PIN code of its district (49xxxx) and coordinates near its block. Every centre
publishes a week of sessions (Covishield and Covaxin; 18-44, 45+ and all ages from 18) with
slots, capacities per dose kind and, on the 18-44 sessions of district hospitals and CHCs, the
High Court's priority shares (frontline 20, AAY 12, BPL 52, APL 16) released at 15:00 IST.
Real: district ids and names, district towns, block names, the PIN prefix of each district town
and its position (approximately). Made up: village and private hospital names (from common
parts), the PIN codes and positions of blocks and centres, capacities and hours.

Deterministic: everything but the timestamps and the database's own ids comes from a seeded
random.Random (`--seed`; the seed is part of the data set: another seed is another state).
Idempotent: rows are matched by natural keys (district id; block by district and name; centre
by district, name and PIN; session by centre, date, vaccine and lowest age; beneficiary by
reference id), so loading again adds only what is missing (a later day tops the week up), and
it can be loaded on top of the small demo (`teeka.demo`), or under it: each reuses the other's
state, districts, blocks, vaccines and, where name and PIN agree, district hospitals.

Load-test beneficiaries (`--beneficiaries N`): person i (from 0) has the reserved reference id
"99" + i in 12 digits and belongs to account i // 4, whose mobile is "60" + (i // 4) in 8 digits.
The application's random reference ids may in principle fall in that range (a chance of about
one in 10^8 per registration on a database holding a million of these); it is a demo and
load-test data set, not for a real registry. Each person's photo id is a synthetic Aadhaar
(or voter id) number, hashed with the server secret exactly as a registration would hash it.

Sessions, slots and capacity buckets are written in bulk (COPY on PostgreSQL, executemany on
SQLite) rather than through `centre.service.publish_session`, which takes about 5 ms a session
on PostgreSQL (some 95 s for these 19,103 sessions; the bulk path takes under 3 s). The
buckets are split by the same pure rule, `booking.rules.split_capacity`, and the slot labels
and shares checked by the same `centre.rules` as a published session. One audit entry
records each load that added anything.

DEMO ONLY: refused when TEEKA_ENVIRONMENT is not development.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka import errors
from teeka.audit.service import log_action
from teeka.booking.rules import split_capacity
from teeka.centre import rules as centre_rules
from teeka.centre.schemas import CentreCreate
from teeka.config import Settings
from teeka.db import session_scope
from teeka.demo import RELEASE, SHARES, STATE
from teeka.demo import _vaccines as shared_vaccines
from teeka.kit import clock, signing
from teeka.models import (
    Account,
    Beneficiary,
    Block,
    CapacityBucket,
    Centre,
    CentreFee,
    District,
    DoseKind,
    SessionSlot,
    Share,
    State,
    VaccinationSession,
)

SEED = 2021
DAYS = 7
STATE_CENTRES = 2100  # spread over the districts by population; each has at least MIN_CENTRES
MIN_CENTRES = 25
FEES = {"COVISHIELD": 780, "COVAXIN": 1410}
LAT, LONG = (17.8, 24.1), (80.2, 84.4)  # the state's bounding box
REFERENCE_PREFIX, MOBILE_PREFIX = "99", "60"
MAX_BENEFICIARIES = 100_000_000
PEOPLE_BLOCK = 50_000  # people are drawn in fixed blocks of this many (part of the data set)
_NAMESPACE = uuid.UUID("6c1c7d1e-4f6a-5b0e-9d52-7465656b6121")

# id, English, Hindi, district town (en, hi), its lat/long, PIN prefix (4 digits), population
# (lakh, 2011 census on today's borders), urban share of centres, blocks "English:Hindi"
# (the block of the district town first).
_D = tuple[int, str, str, str, str, float, float, int, float, float, str]
DISTRICT_DATA: tuple[_D, ...] = (
    (109, "Raipur", "रायपुर", "Raipur", "रायपुर", 21.2514, 81.6296, 4920, 21.6, 0.25,
     "Raipur Urban:रायपुर शहरी,Dharsiwa:धरसींवा,Abhanpur:अभनपुर,Arang:आरंग,Tilda:तिल्दा"),
    (110, "Balod", "बालोद", "Balod", "बालोद", 20.7306, 81.2047, 4912, 8.3, 0.05,
     "Balod:बालोद,Dondi:डौंडी,Dondi Lohara:डौंडीलोहारा,Gunderdehi:गुण्डरदेही,Gurur:गुरूर"),
    (111, "Baloda Bazar", "बलौदाबाजार", "Baloda Bazar", "बलौदाबाजार", 21.6570, 82.1600, 4933,
     11.0, 0.05,
     "Baloda Bazar:बलौदाबाजार,Bhatapara:भाटापारा,Kasdol:कसडोल,Palari:पलारी,Simga:सिमगा"),
    (112, "Balrampur", "बलरामपुर", "Balrampur", "बलरामपुर", 23.6150, 83.6110, 4971, 7.3, 0.05,
     "Balrampur:बलरामपुर,Kusmi:कुसमी,Rajpur:राजपुर,Ramanujganj:रामानुजगंज,Shankargarh:शंकरगढ़,"
     "Wadrafnagar:वाड्रफनगर"),
    (113, "Bastar", "बस्तर", "Jagdalpur", "जगदलपुर", 19.0748, 82.0080, 4940, 8.3, 0.08,
     "Jagdalpur:जगदलपुर,Bakawand:बकावंड,Bastanar:बास्तानार,Bastar:बस्तर,Darbha:दरभा,"
     "Lohandiguda:लोहंडीगुड़ा,Tokapal:तोकापाल"),
    (114, "Bemetara", "बेमेतरा", "Bemetara", "बेमेतरा", 21.7150, 81.5330, 4913, 8.0, 0.05,
     "Bemetara:बेमेतरा,Berla:बेरला,Nawagarh:नवागढ़,Saja:साजा"),
    (115, "Bijapur", "बीजापुर", "Bijapur", "बीजापुर", 18.7950, 80.8160, 4944, 2.6, 0.05,
     "Bijapur:बीजापुर,Bhairamgarh:भैरमगढ़,Bhopalpatnam:भोपालपटनम,Usur:उसूर"),
    (116, "Bilaspur", "बिलासपुर", "Bilaspur", "बिलासपुर", 22.0797, 82.1409, 4950, 13.0, 0.15,
     "Bilha:बिल्हा,Kota:कोटा,Masturi:मस्तूरी,Takhatpur:तखतपुर"),
    (117, "Dantewada", "दंतेवाड़ा", "Dantewada", "दंतेवाड़ा", 18.8990, 81.3470, 4944, 2.8, 0.05,
     "Dantewada:दंतेवाड़ा,Geedam:गीदम,Katekalyan:कटेकल्याण,Kuakonda:कुआकोंडा"),
    (118, "Dhamtari", "धमतरी", "Dhamtari", "धमतरी", 20.7070, 81.5490, 4937, 8.0, 0.05,
     "Dhamtari:धमतरी,Kurud:कुरूद,Magarlod:मगरलोड,Nagri:नगरी"),
    (119, "Durg", "दुर्ग", "Durg", "दुर्ग", 21.1904, 81.2849, 4910, 17.2, 0.30,
     "Durg:दुर्ग,Dhamdha:धमधा,Patan:पाटन"),
    (120, "Gariaband", "गरियाबंद", "Gariaband", "गरियाबंद", 20.6340, 82.0620, 4938, 6.0, 0.05,
     "Gariaband:गरियाबंद,Chhura:छुरा,Deobhog:देवभोग,Fingeshwar:फिंगेश्वर,Mainpur:मैनपुर"),
    (121, "Janjgir-Champa", "जांजगीर-चांपा", "Janjgir", "जांजगीर", 22.0090, 82.5770, 4956, 9.7,
     0.05, "Nawagarh:नवागढ़,Akaltara:अकलतरा,Baloda:बलौदा,Bamhnidih:बम्हनीडीह,Pamgarh:पामगढ़"),
    (122, "Jashpur", "जशपुर", "Jashpur Nagar", "जशपुर नगर", 22.8870, 84.1380, 4963, 8.5, 0.05,
     "Jashpur:जशपुर,Bagicha:बगीचा,Duldula:दुलदुला,Farsabahar:फरसाबहार,Kansabel:कांसाबेल,"
     "Kunkuri:कुनकुरी,Manora:मनोरा,Pathalgaon:पत्थलगांव"),
    (123, "Kanker", "कांकेर", "Kanker", "कांकेर", 20.2710, 81.4930, 4943, 7.5, 0.05,
     "Kanker:कांकेर,Antagarh:अंतागढ़,Bhanupratappur:भानुप्रतापपुर,Charama:चारामा,"
     "Durgkondal:दुर्गूकोंदल,Koylibeda:कोयलीबेड़ा,Narharpur:नरहरपुर"),
    (124, "Kondagaon", "कोंडागांव", "Kondagaon", "कोंडागांव", 19.5910, 81.6640, 4942, 5.8, 0.05,
     "Kondagaon:कोंडागांव,Baderajpur:बड़ेराजपुर,Farasgaon:फरसगांव,Keshkal:केशकाल,Makdi:माकड़ी"),
    (125, "Korba", "कोरबा", "Korba", "कोरबा", 22.3595, 82.7501, 4956, 12.1, 0.12,
     "Korba:कोरबा,Kartala:करतला,Katghora:कटघोरा,Pali:पाली,Podi-Uproda:पोड़ी-उपरोड़ा"),
    (126, "Koriya", "कोरिया", "Baikunthpur", "बैकुंठपुर", 23.2600, 82.5600, 4973, 2.9, 0.05,
     "Baikunthpur:बैकुंठपुर,Sonhat:सोनहत"),
    (127, "Mahasamund", "महासमुंद", "Mahasamund", "महासमुंद", 21.1070, 82.0950, 4934, 10.3, 0.05,
     "Mahasamund:महासमुंद,Bagbahara:बागबाहरा,Basna:बसना,Pithora:पिथौरा,Saraipali:सरायपाली"),
    (128, "Mungeli", "मुंगेली", "Mungeli", "मुंगेली", 22.0660, 81.6850, 4953, 7.0, 0.05,
     "Mungeli:मुंगेली,Lormi:लोरमी,Pathariya:पथरिया"),
    (129, "Narayanpur", "नारायणपुर", "Narayanpur", "नारायणपुर", 19.7200, 81.2470, 4946, 1.4, 0.05,
     "Narayanpur:नारायणपुर,Orchha:ओरछा"),
    (130, "Raigarh", "रायगढ़", "Raigarh", "रायगढ़", 21.8974, 83.3950, 4960, 10.5, 0.10,
     "Raigarh:रायगढ़,Dharamjaigarh:धरमजयगढ़,Gharghoda:घरघोड़ा,Kharsia:खरसिया,Lailunga:लैलूंगा,"
     "Pussore:पुसौर,Tamnar:तमनार"),
    (131, "Rajnandgaon", "राजनांदगांव", "Rajnandgaon", "राजनांदगांव", 21.0970, 81.0300, 4914, 8.5,
     0.10, "Rajnandgaon:राजनांदगांव,Chhuriya:छुरिया,Dongargaon:डोंगरगांव,Dongargarh:डोंगरगढ़"),
    (132, "Sukma", "सुकमा", "Sukma", "सुकमा", 18.3900, 81.6600, 4941, 2.5, 0.05,
     "Sukma:सुकमा,Chhindgarh:छिंदगढ़,Konta:कोंटा"),
    (133, "Surajpur", "सूरजपुर", "Surajpur", "सूरजपुर", 23.2200, 82.8700, 4972, 7.9, 0.05,
     "Surajpur:सूरजपुर,Bhaiyathan:भैयाथान,Odgi:ओड़गी,Pratappur:प्रतापपुर,Premnagar:प्रेमनगर,"
     "Ramanujnagar:रामानुजनगर"),
    (134, "Surguja", "सरगुजा", "Ambikapur", "अंबिकापुर", 23.1200, 83.2000, 4970, 8.4, 0.08,
     "Ambikapur:अंबिकापुर,Batauli:बतौली,Lakhanpur:लखनपुर,Lundra:लुंड्रा,Mainpat:मैनपाट,"
     "Sitapur:सीतापुर,Udaipur:उदयपुर"),
    (135, "Kawardha", "कबीरधाम", "Kawardha", "कवर्धा", 22.0100, 81.2300, 4919, 8.2, 0.05,
     "Kawardha:कवर्धा,Bodla:बोड़ला,Pandariya:पंडरिया,Sahaspur Lohara:सहसपुर लोहारा"),
    (136, "Gaurela-Pendra-Marwahi", "गौरेला-पेंड्रा-मरवाही", "Gaurela", "गौरेला", 22.7500, 81.9000,
     4951, 3.4, 0.05, "Gaurela:गौरेला,Marwahi:मरवाही,Pendra:पेंड्रा"),
    (1001, "Khairagarh-Chhuikhadan-Gandai", "खैरागढ़-छुईखदान-गंडई", "Khairagarh", "खैरागढ़",
     21.4200, 80.9800, 4918, 3.7, 0.05, "Khairagarh:खैरागढ़,Chhuikhadan:छुईखदान"),
    (1002, "Mohla-Manpur-Ambagarh Chowki", "मोहला-मानपुर-अंबागढ़ चौकी", "Mohla", "मोहला", 20.5800,
     80.7400, 4912, 2.8, 0.05, "Mohla:मोहला,Manpur:मानपुर,Ambagarh Chowki:अंबागढ़ चौकी"),
    (1003, "Sarangarh-Bilaigarh", "सारंगढ़-बिलाईगढ़", "Sarangarh", "सारंगढ़", 21.5900, 83.0800,
     4964, 6.2, 0.05, "Sarangarh:सारंगढ़,Baramkela:बरमकेला,Bilaigarh:बिलाईगढ़"),
    (1004, "Manendragarh-Chirmiri-Bharatpur", "मनेंद्रगढ़-चिरमिरी-भरतपुर", "Manendragarh",
     "मनेंद्रगढ़", 23.2000, 82.2000, 4974, 3.8, 0.05,
     "Manendragarh:मनेंद्रगढ़,Bharatpur:भरतपुर,Khadgawan:खड़गवां"),
    (1005, "Sakti", "सक्ती", "Sakti", "सक्ती", 22.0300, 82.9600, 4956, 6.6, 0.05,
     "Sakti:सक्ती,Dabhra:डभरा,Jaijaipur:जैजैपुर,Malkharoda:मालखरौदा"),
)

# Made-up village names: a first part and an ending, sometimes "Kala" (upper) or "Khurd" (lower).
_VILLAGE_START = tuple(p.split(":") for p in (
    "Amli:अमली Bar:बड़ Bel:बेल Ber:बेर Bhat:भाट Chandan:चंदन Dongri:डोंगरी Dhaur:धौर Jam:जाम "
    "Khair:खैर Kohka:कोहका Kosa:कोसा Kusum:कुसुम Mahu:महु Nawa:नवा Parsa:परसा Pipar:पीपर Ram:राम "
    "Sem:सेम Sirsa:सिरसा Sona:सोना Tendu:तेंदू Hardi:हरदी Khamhar:खम्हार Lakh:लाख Bhelwa:भेलवा "
    "Ghot:घोट Karra:कर्रा").split())
_VILLAGE_END = tuple(p.split(":") for p in (
    "pur:पुर gaon:गांव dih:डीह khar:खार tola:टोला bhata:भाठा para:पारा bandha:बांधा kona:कोना "
    "pali:पाली nagar:नगर garh:गढ़ dand:डांड ghat:घाट").split())
_VILLAGE_MORE = (("", ""), (" Kala", " कला"), (" Khurd", " खुर्द"))
_PRIVATE = tuple(p.split(":") for p in (
    "Aarogya:आरोग्य,Shri Balaji:श्री बालाजी,Sanjeevani:संजीवनी,Lifeline:लाइफलाइन,Mahavir:महावीर,"
    "Jeevan Jyoti:जीवन ज्योति,Sai:साईं,Ramkrishna:रामकृष्ण,City:सिटी,Care:केयर,Ekta:एकता,"
    "Shanti:शांति,Sewa:सेवा,Sparsh:स्पर्श,Suyash:सुयश,Nidaan:निदान,Maa Durga:माँ दुर्गा,"
    "Maa Bamleshwari:माँ बम्लेश्वरी,Maa Mahamaya:माँ महामाया,Maa Danteshwari:माँ दंतेश्वरी,"
    "Navjeevan:नवजीवन,Sunrise:सनराइज").split(","))

_MALE = ("Ramesh Suresh Mahesh Dinesh Rajesh Santosh Anil Sunil Vinod Manoj Ashok Rakesh Mukesh "
         "Pawan Deepak Sanjay Vijay Ajay Rahul Amit Rohit Lokesh Tikeshwar Bhupesh Hemant Dilip "
         "Kamal Govind Shankar Raju Devendra Narendra Prakash Jitendra Ramlal Shivlal Budhram "
         "Sukhram Mangal Somaru Lakhan Chandan Kishore Yogesh Naresh Umesh Tularam Dukalu").split()
_FEMALE = ("Sunita Anita Kavita Savita Geeta Sita Rekha Usha Asha Lata Meena Seema Pooja Priya "
           "Neha Jyoti Radha Kamla Shanti Lakshmi Durga Parvati Sarita Sangeeta Mamta Rinki "
           "Sushila Hemlata Bhagwati Janki Phoolbai Sukhmati Budhni Somwari Mangli Dhaneshwari "
           "Kiran Manisha Khileshwari Rameshwari Tulsi Champa Gayatri Nirmala Pushpa Uma").split()
_SURNAMES = ("Sahu Verma Yadav Patel Sinha Dewangan Netam Markam Kashyap Sharma Tiwari "
             "Chandrakar Banjare Kurre Dhruw Kanwar Painkra Ekka Tirkey Mandavi Baghel Nishad "
             "Sonwani Thakur Agrawal Gupta Pandey Mishra Dubey Shukla Jangde Ratre Tandon Khunte "
             "Uikey Pradhan Bhagat Minj Kujur Lakra Nag Sori Poyam Kunjam Korram Usendi Salam "
             "Kerketta Rathia Patle Sen Soni Deshmukh Jaiswal Rajput").split()
# Priority groups by cumulative share: frontline 5 %, AAY 12 %, BPL 52 %, APL 16 %, none 15 %.
_GROUPS = ((0.05, "frontline"), (0.17, "aay"), (0.69, "bpl"), (0.85, "apl"), (1.0, "none"))


@dataclass(frozen=True)
class Band:
    """A session a centre publishes every day; slots are (label, dose1, dose2, precaution)."""

    vaccine: str
    min_age: int
    max_age: int | None
    slots: tuple[tuple[str, int, int, int], ...]
    walkins: int = 0
    shares: bool = False


@dataclass(frozen=True)
class PlannedCentre:
    district_id: int
    block: str
    data: CentreCreate  # block_id is filled in when the block's id is known
    bands: tuple[Band, ...]


@dataclass(frozen=True)
class Plan:
    districts: tuple[tuple[int, str, str], ...]
    blocks: tuple[tuple[int, str, str], ...]
    centres: tuple[PlannedCentre, ...]


def _slots(start: int, hours: int, count: int) -> tuple[str, ...]:
    return tuple(centre_rules.slot_label(time(start + hours * k), time(start + hours * (k + 1)))
                 for k in range(count))


def _near(rng: random.Random, lat: float, long: float, spread: float) -> tuple[float, float]:
    return (round(min(max(lat + rng.uniform(-spread, spread), LAT[0]), LAT[1]), 4),
            round(min(max(long + rng.uniform(-spread, spread), LONG[0]), LONG[1]), 4))


def centres_by_district(total: int = STATE_CENTRES) -> dict[int, int]:
    """How many centres each district gets: in proportion to its population, at least
    MIN_CENTRES."""
    people = sum(d[8] for d in DISTRICT_DATA)
    return {d[0]: max(MIN_CENTRES, round(total * d[8] / people)) for d in DISTRICT_DATA}


class _District:
    """Plans one district's blocks and centres from the shared generator."""

    def __init__(self, rng: random.Random, row: _D) -> None:
        (self.id, self.name_en, self.name_hi, self.town, self.town_hi, self.lat, self.long,
         self.pin, _, self.urban, raw_blocks) = row
        self.rng = rng
        self.blocks = [(en, hi) for en, hi in (b.split(":") for b in raw_blocks.split(","))]
        self.hq = self.blocks[0][0]
        suffixes = [1, *rng.sample(range(10, 99), len(self.blocks) - 1)]
        self.block_pin = {en: self.pin * 100 + s
                          for (en, _), s in zip(self.blocks, suffixes, strict=True)}
        self.block_at = {en: (self.lat, self.long) if k == 0
                         else _near(rng, self.lat, self.long, 0.35)
                         for k, (en, _) in enumerate(self.blocks)}
        self.where, self.where_hi = f"{self.name_en} district", f"जिला {self.name_hi}"
        self.centres: list[PlannedCentre] = []

    def add(self, block: str, names: tuple[str, str], address: tuple[str, str], pincode: int,
            at: tuple[float, float], hours: tuple[int, int], bands: tuple[Band, ...],
            fees: dict[str, int] | None = None) -> None:
        self.centres.append(PlannedCentre(self.id, block, CentreCreate(
            district_id=self.id, block_id=0, name_en=names[0], name_hi=names[1],
            address_en=f"{address[0]}, {self.where}", address_hi=f"{address[1]}, {self.where_hi}",
            pincode=pincode, lat=at[0], long=at[1], fee_type="Paid" if fees else "Free",
            fees=fees or {}, opens_at=time(hours[0]), closes_at=time(hours[1])), bands))

    def pin_near(self, block: str, spread: int) -> int:
        return min(self.block_pin[block] + self.rng.randrange(spread), self.pin * 100 + 99)

    def plan(self, size: int) -> list[PlannedCentre]:
        """A district hospital, paid private hospitals (about 10 %), a CHC in every block but
        the town's, urban PHCs in the town, and village PHCs for the rest; the first `size`."""
        rng, town, town_hi = self.rng, self.town, self.town_hi
        day3 = _slots(9, 2, 2) + _slots(14, 2, 1)
        self.add(self.hq, (f"District Hospital {town}", f"जिला अस्पताल {town_hi}"),
                 (f"Civil Lines, {town}", f"सिविल लाइंस, {town_hi}"), self.block_pin[self.hq],
                 (self.lat, self.long), (9, 17), (
                     Band("COVISHIELD", 18, 44, tuple((s, rng.choice((40, 50, 60)), 10, 0)
                                                      for s in day3), 10, shares=True),
                     Band("COVISHIELD", 45, None, tuple((s, 20, 30, 10) for s in day3), 10),
                     Band("COVAXIN", 18, None, tuple((s, 20, 20, 0) for s in day3), 5)))
        paid = max(1, round(size * 0.10))
        brands = rng.sample(_PRIVATE, min(paid, len(_PRIVATE)))
        for k in range(paid):  # in the town; beyond the list of names, in other block towns
            (brand, brand_hi), lap = brands[k % len(brands)], k // len(brands)
            block, block_hi = self.blocks[lap % len(self.blocks)]
            place, place_hi = (town, town_hi) if block == self.hq else (block, block_hi)
            opens = rng.choice((9, 10))
            slots = _slots(opens, 3, 3)
            d1, d2 = rng.randrange(20, 55, 5), rng.randrange(10, 25, 5)
            self.add(block, (f"{brand} Hospital, {place} (Private)",
                             f"{brand_hi} अस्पताल, {place_hi} (निजी)"),
                     (f"Main Road, {place}", f"मुख्य मार्ग, {place_hi}"), self.pin_near(block, 8),
                     _near(rng, *self.block_at[block], 0.04), (opens, opens + 9),
                     (Band("COVISHIELD", 18, None, tuple((s, d1, d2, 0) for s in slots)),
                      Band("COVAXIN", 18, None, tuple((s, d1, d2, 0) for s in slots))),
                     dict(FEES))
        for block, block_hi in self.blocks[1:]:
            self.add(block, (f"Community Health Centre {block}",
                             f"सामुदायिक स्वास्थ्य केंद्र {block_hi}"),
                     (block, block_hi), self.block_pin[block],
                     _near(rng, *self.block_at[block], 0.02), (9, 17), (
                         Band("COVISHIELD", 18, 44, tuple((s, rng.choice((20, 30, 40)), 10, 0)
                                                          for s in day3), 10, shares=True),
                         Band("COVISHIELD", 45, None, tuple((s, 15, 15, 5) for s in day3), 5)))
        uphc = max(2, round(size * self.urban))
        slots = _slots(8, 3, 2)
        for ward in sorted(rng.sample(range(1, max(71, uphc + 1)), uphc)):
            self.add(self.hq, (f"Urban Primary Health Centre {town} Ward {ward}",
                               f"शहरी प्राथमिक स्वास्थ्य केंद्र {town_hi} वार्ड {ward}"),
                     (f"Ward {ward}, {town}", f"वार्ड {ward}, {town_hi}"),
                     self.pin_near(self.hq, 10), _near(rng, self.lat, self.long, 0.04), (8, 14), (
                         Band("COVAXIN", 18, 44, tuple((s, 25, 10, 0) for s in slots), 5),
                         Band("COVISHIELD", 45, None, tuple((s, 15, 15, 5) for s in slots), 5)))
        villages = [(a + b + c, ah + bh + ch) for a, ah in _VILLAGE_START
                    for b, bh in _VILLAGE_END for c, ch in _VILLAGE_MORE]
        rng.shuffle(villages)
        for village, village_hi in villages[:max(0, size - len(self.centres))]:
            block, block_hi = rng.choice(self.blocks)
            opens = rng.choice((9, 10))
            slots = _slots(opens, 3, 2)
            d1 = rng.randrange(10, 45, 5)
            self.add(block, (f"Primary Health Centre {village}",
                             f"प्राथमिक स्वास्थ्य केंद्र {village_hi}"),
                     (f"{village}, {block} block", f"{village_hi}, विकासखंड {block_hi}"),
                     self.pin_near(block, 4), _near(rng, *self.block_at[block], 0.12),
                     (opens, 16), (Band(rng.choices(("COVISHIELD", "COVAXIN"), (3, 1))[0], 18,
                                        None, tuple((s, d1, d1 // 2, 0) for s in slots), 5),))
        chosen = self.centres[:size]
        if len({c.data.name_en for c in chosen}) != len(chosen):
            raise ValueError(f"too many centres for district {self.id}: names repeat")
        return chosen


def plan_state(seed: int = SEED, centres_per_district: int | None = None) -> Plan:
    """The state's districts, blocks and centres with what each publishes daily. Pure."""
    rng = random.Random(seed)
    sizes = centres_by_district()
    districts: list[tuple[int, str, str]] = []
    blocks: list[tuple[int, str, str]] = []
    centres: list[PlannedCentre] = []
    for row in DISTRICT_DATA:
        district = _District(rng, row)
        districts.append((district.id, district.name_en, district.name_hi))
        blocks.extend((district.id, en, hi) for en, hi in district.blocks)
        centres.extend(district.plan(centres_per_district or sizes[district.id]))
    return Plan(tuple(districts), tuple(blocks), tuple(centres))


# ----------------------------------------------------------------------------- writing

class _Bulk:
    """Many rows at once: COPY on PostgreSQL (asyncpg), executemany elsewhere. Call after the
    unit of work has run a statement, so that COPY joins its transaction."""

    def __init__(self, db: AsyncSession) -> None:
        self.db = db
        self.pg = db.get_bind().dialect.name == "postgresql"

    def stamp(self, moment: datetime | None) -> datetime | None:
        """A UTC moment as a row value: naive for COPY, aware for UTCDateTime columns."""
        if moment is None or not self.pg:
            return moment
        return moment.astimezone(UTC).replace(tzinfo=None)

    async def insert(self, table: Table, columns: Sequence[str],
                     rows: Sequence[tuple[Any, ...]], chunk: int = 20_000) -> int:
        if not rows:
            return 0
        conn = await self.db.connection()
        if self.pg:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name, records=rows, columns=list(columns))
        else:
            for start in range(0, len(rows), chunk):
                await conn.execute(insert(table), [dict(zip(columns, r, strict=True))
                                                   for r in rows[start:start + chunk]])
        return len(rows)

    async def reserve_ids(self, table: Table, count: int) -> list[int]:
        """`count` fresh primary keys for `table` (a sequence on PostgreSQL; on SQLite the
        unit of work holds the write lock, so the next ones after the largest are free)."""
        if count == 0:
            return []
        if self.pg:
            rows = await self.db.execute(text(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "  # noqa: S608
                "FROM generate_series(1, :n)"), {"n": count})
            return [int(r[0]) for r in rows]
        top = (await self.db.execute(select(func.coalesce(func.max(table.c.id), 0)))).scalar_one()
        return list(range(int(top) + 1, int(top) + 1 + count))


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _check_development(settings: Settings) -> None:
    if not settings.is_development:
        raise errors.Invalid(detail="demo data is for development only "
                                    f"(TEEKA_ENVIRONMENT={settings.environment})")


# The vaccines and their intervals: the small demo's, created once, shared by both demos.
_vaccines = shared_vaccines


async def _geography(db: AsyncSession, bulk: _Bulk, plan: Plan, added: dict[str, int]
                     ) -> dict[tuple[int, str], int]:
    if await db.get(State, STATE[0]) is None:
        db.add(State(id=STATE[0], name_en=STATE[1], name_hi=STATE[2]))
        await db.flush()
    have = set((await db.execute(select(District.id))).scalars())
    added["districts"] += await bulk.insert(_table(District), ("id", "state_id", "name_en",
                                                                "name_hi"),
                                            [(d, STATE[0], en, hi) for d, en, hi in plan.districts
                                             if d not in have])
    query = select(Block.district_id, Block.name_en, Block.id)
    blocks = {(d, n): i for d, n, i in await db.execute(query)}
    added["blocks"] += await bulk.insert(_table(Block), ("district_id", "name_en", "name_hi"),
                                         [b for b in plan.blocks if b[:2] not in blocks])
    return {(d, n): i for d, n, i in await db.execute(query)}


async def _centres(db: AsyncSession, bulk: _Bulk, plan: Plan, blocks: dict[tuple[int, str], int],
                   vaccines: dict[str, int], added: dict[str, int]) -> list[int]:
    query = select(Centre.district_id, Centre.name_en, Centre.pincode, Centre.id)
    have = {(d, n, p): i for d, n, p, i in await db.execute(query)}
    columns = ("district_id", "block_id", "name_en", "name_hi", "address_en", "address_hi",
               "pincode", "lat", "long", "fee_type", "opens_at", "closes_at", "active")
    rows = []
    for c in plan.centres:
        if (c.district_id, c.data.name_en, c.data.pincode) in have:
            continue
        values = c.data.model_dump(exclude={"fees"})
        values["block_id"] = blocks[c.district_id, c.block]
        rows.append((*(values[k] for k in columns[:-1]), True))
    added["centres"] += await bulk.insert(_table(Centre), columns, rows)
    have = {(d, n, p): i for d, n, p, i in await db.execute(query)}
    ids = [have[c.district_id, c.data.name_en, c.data.pincode] for c in plan.centres]
    fees = {(c, v) for c, v in await db.execute(select(CentreFee.centre_id, CentreFee.vaccine_id))}
    added["centre_fees"] += await bulk.insert(_table(CentreFee), ("centre_id", "vaccine_id",
                                                                  "fee"), [
        (cid, vaccines[code], fee) for c, cid in zip(plan.centres, ids, strict=True)
        for code, fee in c.data.fees.items() if (cid, vaccines[code]) not in fees])
    return ids


_KINDS = (DoseKind.FIRST, DoseKind.SECOND, DoseKind.PRECAUTION)


def _buckets(band: Band) -> list[tuple[str, list[tuple[DoseKind, Share, int]]]]:
    """Per slot label, its buckets (dose kind, share, capacity): the same split as
    centre.service.publish_session makes."""
    centre_rules.check_age_band(band.min_age, band.max_age)
    shares = centre_rules.parse_shares(";".join(f"{k}:{v}" for k, v in SHARES.items())
                                       if band.shares else "")
    out = []
    for label, *totals in band.slots:
        label = centre_rules.slot_label(*centre_rules.parse_slot(label))
        out.append((label, [(kind, share, capacity)
                            for kind, total in zip(_KINDS, totals, strict=True) if total
                            for share, capacity in split_capacity(total, shares).items()]))
    return out


async def _sessions(db: AsyncSession, bulk: _Bulk, plan: Plan, centre_ids: list[int],
                    vaccines: dict[str, int], days: int, added: dict[str, int]) -> None:
    today = clock.today()
    dates = [today + timedelta(days=k) for k in range(days)]
    have = {(c, d, v, a) for c, d, v, a in await db.execute(
        select(VaccinationSession.centre_id, VaccinationSession.date,
               VaccinationSession.vaccine_id, VaccinationSession.min_age)
        .where(VaccinationSession.date >= today, VaccinationSession.date <= dates[-1]))}
    shapes: dict[Band, list[tuple[str, list[tuple[DoseKind, Share, int]]]]] = {}
    now = bulk.stamp(clock.now())
    sessions: list[tuple[Any, ...]] = []
    slots: list[tuple[Any, ...]] = []
    buckets: list[tuple[Any, ...]] = []
    wanted: list[tuple[str, Band, date]] = []
    for c, cid in zip(plan.centres, centre_ids, strict=True):
        for day in dates:
            for band in c.bands:
                if (cid, day, vaccines[band.vaccine], band.min_age) in have:
                    continue
                sid = str(uuid.uuid5(_NAMESPACE, f"{c.district_id}|{c.data.name_en}|"
                                     f"{c.data.pincode}|{day}|{band.vaccine}|{band.min_age}"))
                sessions.append((sid, cid, day, vaccines[band.vaccine], band.min_age,
                                 band.max_age, band.walkins, 0, now))
                wanted.append((sid, band, day))
    slot_ids = iter(await bulk.reserve_ids(_table(SessionSlot),
                                           sum(len(b.slots) for _, b, _ in wanted)))
    for sid, band, day in wanted:
        release = bulk.stamp(clock.local_datetime(day, RELEASE.hour, RELEASE.minute))
        if band not in shapes:
            shapes[band] = _buckets(band)
        for ordinal, (label, parts) in enumerate(shapes[band]):
            slot_id = next(slot_ids)
            slots.append((slot_id, sid, label, ordinal))
            buckets.extend((slot_id, sid, kind.value, share.value, capacity, 0,
                            None if share == Share.OPEN else release)
                           for kind, share, capacity in parts)
    added["sessions"] += await bulk.insert(_table(VaccinationSession), (
        "id", "centre_id", "date", "vaccine_id", "min_age", "max_age", "walkin_allowance",
        "walkins_used", "created_at"), sessions)
    added["slots"] += await bulk.insert(_table(SessionSlot), ("id", "session_id", "label",
                                                              "ordinal"), slots)
    added["buckets"] += await bulk.insert(_table(CapacityBucket), (
        "slot_id", "session_id", "dose_kind", "share", "capacity", "booked", "release_at"),
        buckets)


async def load_state(maker: async_sessionmaker[AsyncSession], settings: Settings, *,
                     seed: int = SEED, centres_per_district: int | None = None,
                     days: int = DAYS) -> dict[str, int]:
    """Load (or top up) the state data set in one unit of work; returns what was added.
    `centres_per_district` makes a smaller state (tests); None is the real size."""
    _check_development(settings)
    plan = plan_state(seed, centres_per_district)
    added = dict.fromkeys(("districts", "blocks", "vaccines", "centres", "centre_fees",
                           "sessions", "slots", "buckets"), 0)
    async with session_scope(maker) as db:
        bulk = _Bulk(db)
        vaccines = await _vaccines(db, added)
        blocks = await _geography(db, bulk, plan, added)
        centre_ids = await _centres(db, bulk, plan, blocks, vaccines, added)
        await _sessions(db, bulk, plan, centre_ids, vaccines, days, added)
        if any(added.values()):
            await log_action(db, actor="demo", action="demo.state.loaded", object_type="state",
                             object_id=STATE[0], seed=seed, **added)
        if bulk.pg and any(added.values()):  # planner statistics for what was just loaded
            await db.execute(text("ANALYZE district, block, centre, centre_fee, "
                                  "vaccination_session, session_slot, capacity_bucket"))
    return added


# ----------------------------------------------------------------------------- people

def reference_id(index: int) -> str:
    """The reserved reference id of load-test person `index`."""
    return f"{REFERENCE_PREFIX}{index:012d}"


def mobile(account: int) -> str:
    """The reserved mobile number of load-test account `account` (4 people each)."""
    return f"{MOBILE_PREFIX}{account:08d}"


def _id_document(index: int, seed: int) -> tuple[str, str]:
    """A photo-id (type, number) unique to `index`: a voter id for one in 16, else Aadhaar."""
    if index % 16 == 7 and index < 10**7:
        return "voter_id", f"CGV{index:07d}"
    # i -> 2e11 + (i * odd + offset) mod 8e11 is one-to-one on 0 <= i < 8e11 (the factor has
    # no prime factor 2 or 5); a 12-digit number starting 2-9, like an Aadhaar number.
    return "aadhaar", str(2 * 10**11 + (index * 387_420_489 + seed * 7_919) % (8 * 10**11))


def _people(seed: int, first: int, last: int) -> Iterable[tuple[int, str, int, str, str, str, str,
                                                                 str]]:
    """(index, name, birth year, gender, id type, id number, priority group, secret code) for
    first <= index < last. Each block of PEOPLE_BLOCK people is drawn from its own seeded
    generator, so person i is the same whatever N and however often the load is topped up."""
    for block in range(first // PEOPLE_BLOCK, (last - 1) // PEOPLE_BLOCK + 1):
        rng = random.Random(f"{seed}:people:{block}")
        for index in range(block * PEOPLE_BLOCK, min((block + 1) * PEOPLE_BLOCK, last)):
            r = rng.random()
            gender = "male" if r < 0.505 else "female" if r < 0.998 else "other"
            given = rng.choice(_MALE if gender == "male" else _FEMALE if gender == "female"
                               else _MALE + _FEMALE)
            name = f"{given} {rng.choice(_SURNAMES)}"
            birth_year = 2005 - int(rng.triangular(0, 71, 10))
            g = rng.random()
            group = next(label for limit, label in _GROUPS if g < limit)
            code = f"{rng.randrange(10_000):04d}"
            if index >= first:
                id_type, number = _id_document(index, seed)
                yield index, name, birth_year, gender, id_type, number, group, code


async def load_beneficiaries(maker: async_sessionmaker[AsyncSession], settings: Settings, *,
                             count: int, seed: int = SEED, batch: int = PEOPLE_BLOCK
                             ) -> dict[str, int]:
    """Make sure load-test people 0..count-1 exist (4 to an account), adding the missing ones
    in batches of `batch`, each its own unit of work. Returns what was added."""
    _check_development(settings)
    if not 0 <= count <= MAX_BENEFICIARIES:
        raise errors.Invalid(detail="beneficiaries must be between 0 and {most}",
                             most=MAX_BENEFICIARIES)
    added = {"accounts": 0, "beneficiaries": 0}
    if count == 0:
        return added
    ref = Beneficiary.reference_id
    in_range = (ref >= reference_id(0)) & (ref < reference_id(count))
    async with session_scope(maker) as db:
        have = (await db.execute(select(func.count()).select_from(Beneficiary)
                                  .where(in_range))).scalar_one()
        existing: set[int] = set()
        if have:
            existing = {int(r[len(REFERENCE_PREFIX):])
                        for r in (await db.execute(select(ref).where(in_range))).scalars()}
    if len(existing) >= count:
        return added
    secret = settings.resolved_secret()
    for start in range(0, count, batch):
        end = min(start + batch, count)
        if all(i in existing for i in range(start, end)):
            continue
        async with session_scope(maker) as db:
            await _people_batch(db, secret, seed, start, end, existing, added)
    async with session_scope(maker) as db:
        await log_action(db, actor="demo", action="demo.beneficiaries.loaded",
                         object_type="state", object_id=STATE[0], seed=seed, count=count,
                         **added)
        if db.get_bind().dialect.name == "postgresql":
            await db.execute(text("ANALYZE account, beneficiary"))
    return added


async def _people_batch(db: AsyncSession, secret: str, seed: int, start: int, end: int,
                        existing: set[int], added: dict[str, int]) -> None:
    bulk = _Bulk(db)
    first, last = mobile(start // 4), mobile((end - 1) // 4)
    query = select(Account.mobile, Account.id).where(Account.mobile >= first,
                                                     Account.mobile <= last)
    accounts = {m: i for m, i in await db.execute(query)}
    now = clock.now()
    stamp = bulk.stamp(now)
    languages = ("hi",) * 6 + ("en",)
    added["accounts"] += await bulk.insert(_table(Account), ("mobile", "language", "created_at"), [
        (m, languages[a % 7], stamp) for a in range(start // 4, (end - 1) // 4 + 1)
        if (m := mobile(a)) not in accounts])
    accounts = {m: i for m, i in await db.execute(query)}
    rows = [(reference_id(i), accounts[mobile(i // 4)], None, name, year, gender, id_type,
             signing.keyed_hash(secret, "photo-id", f"{id_type}:{number}"), number[-4:], group,
             code, "active", stamp)
            for i, name, year, gender, id_type, number, group, code in _people(seed, start, end)
            if i not in existing]
    added["beneficiaries"] += await bulk.insert(_table(Beneficiary), (
        "reference_id", "account_id", "registered_by_staff_id", "name", "birth_year", "gender",
        "id_type", "id_hash", "id_last4", "priority_group", "secret_code", "status",
        "created_at"), rows)
