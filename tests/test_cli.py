"""The `teeka` command, run as an operator runs it (the installed script in a subprocess, on its
own SQLite file) and in-process through typer's CliRunner against such a file. The demo is also
loaded in-process on the suite's database, so that it is tried on PostgreSQL too."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from typer.testing import CliRunner

from teeka.cli import app
from teeka.db import Base, session_scope
from teeka.demo import load_demo
from teeka.kit import clock
from teeka.models import VaccinationSession

TEEKA = Path(sys.executable).parent / "teeka"
HEADER = ("centre_id,date,vaccine,min_age,max_age,slot,dose1,dose2,precaution,walkin_allowance,"
          "shares,share_release_time")
TABLES = [t.name for t in Base.metadata.sorted_tables]


def make_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TEEKA_") or k == "TEEKA_TEST_DATABASE_URL"}
    return {**env, "TEEKA_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/teeka.sqlite3",
            "TEEKA_DATA_DIR": str(folder / "var"), "TEEKA_SECRET_KEY": "cli-test-" + "x" * 24,
            "TEEKA_ENVIRONMENT": "development", **extra}


def teeka(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(TEEKA), *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(env["TEEKA_DATA_DIR"]).parent)
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def database(env: dict[str, str]) -> sqlite3.Connection:
    return sqlite3.connect(env["TEEKA_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///"))


def counts(env: dict[str, str]) -> dict[str, int]:
    with database(env) as db:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def invoke(env: dict[str, str], *args: str, input: str | None = None):
    """In-process; TEEKA_ variables of the test's own environment are hidden from the command."""
    hidden: dict[str, str | None] = {k: None for k in os.environ
                                     if k.startswith("TEEKA_") and k not in env}
    return CliRunner().invoke(app, list(args), env={**hidden, **env}, input=input)


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SQLite file of its own, built by `teeka db upgrade` and loaded by `teeka demo`."""
    env = make_env(tmp_path_factory.mktemp("cli"))
    teeka(env, "db", "upgrade")
    teeka(env, "demo")
    return env


def test_db_upgrade_and_demo_twice_change_nothing(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    assert "at revision head" in teeka(env, "db", "upgrade").stdout
    first = teeka(env, "demo")
    assert "98 sessions" in first.stdout and "7 centres" in first.stdout, first.stdout
    assert "teeka-demo-2021" in first.stdout
    after_first = counts(env)
    second = teeka(env, "demo")
    assert "0 sessions" in second.stdout and "0 staff" in second.stdout, second.stdout
    teeka(env, "db", "upgrade")
    assert counts(env) == after_first

    today = clock.today()
    with database(env) as db:
        assert db.execute("SELECT id, name_en, name_hi FROM state").fetchall() == [
            (7, "Chhattisgarh", "छत्तीसगढ़")]
        assert db.execute("SELECT id, name_en, name_hi FROM district ORDER BY id").fetchall() == [
            (109, "Raipur", "रायपुर"), (116, "Bilaspur", "बिलासपुर"), (119, "Durg", "दुर्ग")]
        assert db.execute("SELECT district_id, count(*) FROM block GROUP BY district_id"
                          ).fetchall() == [(109, 2), (116, 2), (119, 2)]
        pins = dict(db.execute("SELECT district_id, group_concat(pincode) FROM centre "
                               "GROUP BY district_id").fetchall())
        assert {d: sorted(int(p) // 100 for p in v.split(",")) for d, v in pins.items()} == {
            109: [4920] * 3, 116: [4950] * 2, 119: [4910] * 2}
        assert db.execute("SELECT count(*) FROM centre WHERE name_hi = name_en OR address_hi = ''"
                          ).fetchone() == (0,)
        assert db.execute("SELECT c.fee_type, v.code, f.fee FROM centre_fee f "
                          "JOIN centre c ON c.id = f.centre_id "
                          "JOIN vaccine v ON v.id = f.vaccine_id ORDER BY v.code").fetchall() == [
            ("Paid", "COVAXIN", 1410), ("Paid", "COVISHIELD", 780)]
        assert db.execute("SELECT v.code, v.manufacturer, v.doses, v.precaution_after_days, "
                          "i.dose_number, i.min_days, i.max_days FROM vaccine v "
                          "JOIN vaccine_interval i ON i.vaccine_id = v.id ORDER BY v.code"
                          ).fetchall() == [("COVAXIN", "Bharat Biotech", 2, None, 2, 28, 42),
                                           ("COVISHIELD", "Serum Institute of India", 2, 270, 2,
                                            84, 112)]
        staff = db.execute("SELECT s.username, s.role, s.district_id, c.name_en FROM staff_user s"
                           " LEFT JOIN centre c ON c.id = s.centre_id ORDER BY s.id").fetchall()
        assert staff == [("admin", "state_admin", None, None),
                         ("raipur", "district_admin", 109, None),
                         ("helpdesk", "helpdesk", 109, None),
                         ("vaccinator", "vaccinator", None, "District Hospital Pandri")]
        hashes = [h for (h,) in db.execute("SELECT password_hash FROM staff_user")]
        assert all(PasswordHasher().verify(h, "teeka-demo-2021") for h in hashes)
        days = [d for (d,) in db.execute("SELECT DISTINCT date FROM vaccination_session "
                                         "ORDER BY date")]
        assert days == [str(today + timedelta(days=i)) for i in range(7)]
        # every centre, every day; both age bands; shares and walk-ins on some
        assert db.execute("SELECT count(DISTINCT centre_id || date) FROM vaccination_session"
                          ).fetchone() == (49,)
        assert {r[0] for r in db.execute("SELECT DISTINCT min_age FROM vaccination_session")} == {
            18, 45}
        assert db.execute("SELECT DISTINCT label FROM session_slot ORDER BY label").fetchall() == [
            ("02:00PM-04:00PM",), ("09:00AM-11:00AM",), ("11:00AM-01:00PM",)]
        shares = db.execute("SELECT share, sum(capacity) FROM capacity_bucket WHERE dose_kind = "
                            "'first' AND share != 'open' GROUP BY share ORDER BY share").fetchall()
        # 30 first doses a slot split 20/12/52/16: 6, 3.6, 15.6, 4.8 -> 6, 4, 15, 5 (largest
        # remainder); in 3 slots, 7 days, at the 3 district hospitals' 18-44 sessions.
        assert dict(shares) == {"frontline": 6 * 63, "aay": 4 * 63, "bpl": 15 * 63,
                                "apl": 5 * 63}
        assert db.execute("SELECT count(*) FROM vaccination_session WHERE walkin_allowance > 0"
                          ).fetchone() == (98,)


async def test_demo_tops_up_a_later_day_and_duplicates_nothing(maker, settings) -> None:
    async def sessions() -> int:
        async with session_scope(maker) as db:
            return int((await db.execute(select(func.count()).select_from(VaccinationSession))
                        ).scalar_one())

    first = await load_demo(maker, settings)
    assert first == {"districts": 3, "blocks": 6, "vaccines": 2, "centres": 7, "staff": 4,
                     "sessions": 98}
    assert await load_demo(maker, settings) == dict.fromkeys(first, 0)
    assert await sessions() == 98
    clock.shift(timedelta(days=2))  # two days later: the week is short of two days
    again = await load_demo(maker, settings)
    assert again == {**dict.fromkeys(first, 0), "sessions": 28}
    assert await sessions() == 126
    assert await load_demo(maker, settings) == dict.fromkeys(first, 0)


def test_demo_is_refused_in_production(demo_env: dict[str, str]) -> None:
    done = teeka({**demo_env, "TEEKA_ENVIRONMENT": "production"}, "demo", check=False)
    assert done.returncode == 1
    assert "development only" in done.stderr and "Traceback" not in done.stderr


def test_several_workers_without_redis_are_refused(demo_env: dict[str, str]) -> None:
    """Each process would keep a waiting room of its own: admitted by one, refused by another."""
    done = invoke({**demo_env, "TEEKA_REDIS_URL": ""}, "serve", "--workers", "2")
    assert done.exit_code == 2
    assert "TEEKA_REDIS_URL" in done.output


def test_user_create_reads_the_password_from_the_environment(demo_env) -> None:
    env = {**demo_env, "TEEKA_NEW_USER_PASSWORD": "a-long-secret-1"}
    result = invoke(env, "user", "create", "--username", "durg", "--role", "district_admin",
                    "--district-id", "119", "--name", "Durg District Administrator")
    assert result.exit_code == 0, result.output
    assert "created district_admin 'durg'" in result.output
    with database(demo_env) as db:
        row = db.execute("SELECT role, district_id, name, password_hash, active FROM staff_user "
                         "WHERE username = 'durg'").fetchone()
    assert row[:3] == ("district_admin", 119, "Durg District Administrator") and row[4] == 1
    assert PasswordHasher().verify(row[3], "a-long-secret-1")
    assert "a-long-secret-1" not in result.output


def test_user_create_asks_for_the_password_twice(demo_env) -> None:
    result = invoke(demo_env, "user", "create", "--username", "vacc-durg", "--role", "vaccinator",
                    "--centre-id", "4", input="another-secret\nanother-secret\n")
    assert result.exit_code == 0, result.output
    with database(demo_env) as db:
        (hashed,) = db.execute("SELECT password_hash FROM staff_user "
                               "WHERE username = 'vacc-durg'").fetchone()
    assert PasswordHasher().verify(hashed, "another-secret")


@pytest.mark.parametrize(("args", "exit_code", "said"), [
    (["--username", "x1", "--role", "district_admin"], 1, "this role needs a district"),
    (["--username", "x2", "--role", "vaccinator"], 1, "a vaccinator needs a centre"),
    (["--username", "x3", "--role", "helpdesk", "--district-id", "999"], 1, "no district 999"),
    (["--username", "admin", "--role", "state_admin"], 1, "'admin' is taken"),
    (["--username", "x4", "--role", "superuser"], 2, "superuser"),
    (["--username", "x5", "--role", "state_admin", "--password", "a-long-secret-1"], 2,
     "--password"),
])
def test_user_create_refusals_are_sentences(demo_env, args, exit_code, said) -> None:
    env = {**demo_env, "TEEKA_NEW_USER_PASSWORD": "a-long-secret-1"}
    before = counts(demo_env)["staff_user"]
    result = invoke(env, "user", "create", *args)
    assert result.exit_code == exit_code, result.output
    assert said in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert counts(demo_env)["staff_user"] == before


def test_an_operator_is_put_on_call_and_off(demo_env) -> None:
    """`teeka user on-call`: a state administrator with a mobile number (masked in the
    output), in the language of their SMS; --off takes them off; refusals are sentences."""
    result = invoke(demo_env, "user", "on-call", "admin", "--mobile", "9876543210",
                    "--language", "en")
    assert result.exit_code == 0, result.output
    assert "'admin' is on call" in result.output and "9876543210" not in result.output
    with database(demo_env) as db:
        row = db.execute("SELECT mobile, on_call, language FROM staff_user "
                         "WHERE username = 'admin'").fetchone()
    assert row == ("9876543210", 1, "en")
    result = invoke(demo_env, "user", "on-call", "admin", "--off")
    assert result.exit_code == 0 and "off call" in result.output, result.output
    with database(demo_env) as db:
        assert db.execute("SELECT on_call FROM staff_user WHERE username = 'admin'"
                          ).fetchone() == (0,)
    result = invoke(demo_env, "user", "on-call", "admin", "--forget")
    assert result.exit_code == 0 and "off call" in result.output, result.output
    with database(demo_env) as db:
        assert db.execute("SELECT mobile, on_call FROM staff_user WHERE username = 'admin'"
                          ).fetchone() == (None, 0)
    for args, said in ((["admin", "--mobile", "12345"], "10 digits"),
                       (["nobody"], "not a state administrator"),
                       (["admin", "--language", "fr"], "hi or en")):
        result = invoke(demo_env, "user", "on-call", *args)
        assert result.exit_code != 0 and said in result.output, result.output


def test_a_staff_users_mobile_is_kept_and_forgotten(demo_env) -> None:
    """`teeka user mobile`: any staff user's number (masked in the output), for the SMS about
    the problems they raise; --forget erases it (and takes an operator off call)."""
    result = invoke(demo_env, "user", "mobile", "raipur", "--mobile", "9876543211",
                    "--language", "en")
    assert result.exit_code == 0, result.output
    assert "SMS to" in result.output and "9876543211" not in result.output
    with database(demo_env) as db:
        assert db.execute("SELECT mobile, language FROM staff_user WHERE username = 'raipur'"
                          ).fetchone() == ("9876543211", "en")
    result = invoke(demo_env, "user", "mobile", "raipur", "--forget")
    assert result.exit_code == 0 and "no mobile number" in result.output, result.output
    with database(demo_env) as db:
        assert db.execute("SELECT mobile FROM staff_user WHERE username = 'raipur'"
                          ).fetchone() == (None,)
    for args, said in ((["raipur", "--mobile", "12345"], "10 digits"),
                       (["nobody", "--mobile", "9876543211"], "no staff user"),
                       (["raipur"], "give --mobile")):
        result = invoke(demo_env, "user", "mobile", *args)
        assert result.exit_code != 0 and said in result.output, result.output


def test_user_create_refuses_a_short_password(demo_env) -> None:
    done = teeka({**demo_env, "TEEKA_NEW_USER_PASSWORD": "short"}, "user", "create",
                 "--username", "shorty", "--role", "state_admin", check=False)
    assert done.returncode == 1
    assert "at least 10 characters" in done.stderr and "Traceback" not in done.stderr


def test_sessions_import_as_a_district_admin(demo_env, tmp_path: Path) -> None:
    with database(demo_env) as db:
        ids = dict(db.execute("SELECT name_en, id FROM centre").fetchall())
    pandri, durg = ids["District Hospital Pandri"], ids["District Hospital Durg"]
    day = (clock.today() + timedelta(days=20)).strftime("%d-%m-%Y")
    good = tmp_path / "week.csv"
    good.write_text("\n".join([
        HEADER,
        f"{pandri},{day},COVISHIELD,18,44,09:00AM-11:00AM,50,0,0,5,"
        "frontline:20;aay:12;bpl:52;apl:16,15:00",
        f"{pandri},{day},COVISHIELD,18,44,11:00AM-01:00PM,50,0,0,5,"
        "frontline:20;aay:12;bpl:52;apl:16,15:00",
        f"{pandri},{day},COVAXIN,45,,02:00PM-04:00PM,10,10,0,0,,"]) + "\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([HEADER, f"{pandri},{day},COVISHIELD,45,,09:00AM-11:00AM,5,0,0,0,,",
                              f"{durg},{day},COVISHIELD,45,,09:00AM-11:00AM,5,0,0,0,,"]) + "\n")

    before = counts(demo_env)
    result = invoke(demo_env, "sessions", "import", str(bad), "--as", "raipur")
    assert result.exit_code == 1, result.output
    assert f"row 3: centre not in your district (centre_id {durg})" in result.output
    assert "Nothing was changed" in result.output
    assert counts(demo_env) == before

    result = invoke(demo_env, "sessions", "import", str(good), "--as", "raipur")
    assert result.exit_code == 0, result.output
    assert "2 session(s) published from 3 row(s)" in result.output
    assert counts(demo_env)["vaccination_session"] == before["vaccination_session"] + 2

    again = invoke(demo_env, "sessions", "import", str(good), "--as", "raipur")
    assert again.exit_code == 1 and "already has a session" in again.output
    nobody = invoke(demo_env, "sessions", "import", str(good), "--as", "nobody")
    assert nobody.exit_code == 1 and "no active staff user 'nobody'" in nobody.output
    vaccinator = invoke(demo_env, "sessions", "import", str(good), "--as", "vaccinator")
    assert vaccinator.exit_code == 1 and "not allowed" in vaccinator.output
    binary = tmp_path / "week.xlsx"
    binary.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    refused = invoke(demo_env, "sessions", "import", str(binary), "--as", "raipur")
    assert refused.exit_code == 1 and "not CSV" in refused.output
    huge = tmp_path / "huge.csv"
    huge.write_text(HEADER + "\n" + "x" * (1024 * 1024))
    refused = invoke(demo_env, "sessions", "import", str(huge), "--as", "raipur")
    assert refused.exit_code == 1 and "larger than 1 MB" in refused.output
    assert counts(demo_env)["vaccination_session"] == before["vaccination_session"] + 2


def test_check_passes_then_finds_a_counter_that_disagrees(demo_env) -> None:
    result = invoke(demo_env, "check")
    assert result.exit_code == 0, result.output
    assert "agree" in result.output
    with database(demo_env) as db:
        (bucket,) = db.execute("SELECT min(id) FROM capacity_bucket").fetchone()
        db.execute("UPDATE capacity_bucket SET booked = 1 WHERE id = ?", (bucket,))
    try:
        result = invoke(demo_env, "check")
        assert result.exit_code == 1, result.output
        assert f"capacity bucket {bucket}: counter says 1 booked, appointments say 0" in (
            result.output)
    finally:
        with database(demo_env) as db:
            db.execute("UPDATE capacity_bucket SET booked = 0 WHERE id = ?", (bucket,))
    assert invoke(demo_env, "check").exit_code == 0


def test_a_database_without_the_schema_is_a_sentence(tmp_path: Path) -> None:
    done = teeka(make_env(tmp_path), "check", check=False)
    assert done.returncode == 1
    assert "Run `teeka db upgrade`" in done.stderr and "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def started(demo_env) -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; each is stopped (by its own handle) afterwards."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_answers_on_the_port_it_was_given(demo_env, started) -> None:
    port = _free_port()
    proc = subprocess.Popen([str(TEEKA), "serve", "--port", str(port)], env=demo_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started.append(proc)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/sessions"
                                        "?district_id=109", timeout=2) as answer:
                assert answer.status == 200
                assert b"District Hospital Pandri" in answer.read()
                break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0


def test_worker_delivers_the_outbox_and_stops_on_sigterm(demo_env, started) -> None:
    with database(demo_env) as db:
        db.execute("INSERT INTO outbox_message (kind, recipient, body, sensitive, status, "
                   "attempts, next_attempt_at, created_at) VALUES ('notification.send_sms', "
                   "'9000000042', 'Your appointment is booked', 0, 'pending', 0, "
                   "'2001-01-01 00:00:00', '2001-01-01 00:00:00')")
    proc = subprocess.Popen([str(TEEKA), "worker"], env=demo_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    started.append(proc)
    deadline = time.monotonic() + 30
    while True:
        with database(demo_env) as db:
            sent = db.execute("SELECT count(*) FROM dev_sms WHERE recipient = '9000000042'"
                              ).fetchone()[0]
        if sent:
            break
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
        time.sleep(0.2)
    with database(demo_env) as db:
        assert db.execute("SELECT status FROM outbox_message WHERE recipient = '9000000042'"
                          ).fetchone() == ("sent",)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert proc.stdout is not None and "worker stopped" in proc.stdout.read()
