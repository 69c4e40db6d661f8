"""Staff in the browser, with the demo logins (password, then TOTP): the district officer
publishes a session that a citizen books, the vaccinator records that dose and the citizen sees
it; a wrong secret code stopped at the vaccinator's screen; assisted registration at the help
desk with a printed slip."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

from playwright.sync_api import Page, expect

from teeka.kit import clock
from tests.browser.conftest import (
    ARTIFACTS,
    NewContext,
    StaffPageFactory,
    assert_accessible,
    engine,
    new_aadhaar,
    new_mobile,
    otp_login,
    screenshot,
)
from tests.browser.steps import Person, add_person, book_on_page, dmy
from tests.vaccination.test_offline import earlier_today

PANDRI = re.compile("District Hospital Pandri|जिला अस्पताल पंडरी")  # the vaccinator's centre (demo)


def _citizen_books(new_context: NewContext, live_server: str, session_id: str, person: Person,
                   *, shots: str | None = None) -> tuple[Page, str]:
    """A citizen on their phone opens the session's booking page, logs in, adds the person and
    books; returns their page (on /booked/…) and the confirmation number."""
    page = new_context().new_page()
    page.goto(f"/book/{session_id}")
    otp_login(page, live_server, new_mobile())
    with page.expect_navigation():
        page.locator('main a[href^="/me/add?next=/book/"]').first.click()
    add_person(page, person)
    number = book_on_page(page, shots=shots)
    person.reference_id = page.locator("main .reference-id").first.inner_text().strip()
    person.secret_code = page.locator("main .secret-code").first.inner_text().strip()
    return page, number


def _find_at_centre(page: Page, reference_id: str) -> None:
    """The vaccinator's list for today: find the person by reference id, open the appointment."""
    page.goto("/staff/centre")
    page.fill("#ref", reference_id)
    with page.expect_navigation():
        page.click("#find-ref-submit")
    row = page.locator("#results tr[data-appointment]")
    expect(row).to_have_count(1)
    with page.expect_navigation():
        row.locator('a[href^="/staff/centre/appointments/"]').click()
    expect(page.locator("#reference-id")).to_have_text(reference_id)


def test_district_publishes_citizen_books_vaccinator_records(
        staff_page: StaffPageFactory, new_context: NewContext, live_server: str) -> None:
    # The district officer of Raipur publishes a session for today at District Hospital Pandri.
    officer = staff_page("raipur", shots="district")
    assert officer.url.endswith("/staff/district"), officer.url
    screenshot(officer, "district-01-centres")
    with officer.expect_navigation():
        officer.locator("#centres tr").filter(has_text=PANDRI).locator(
            'a[id^="centre-link-"]').click()
    # The form's default date is tomorrow by the server's clock (DD-MM-YYYY): go back a day.
    day, month, year = (int(x) for x in officer.input_value("#date").split("-"))
    session_day = date(year, month, day) - timedelta(days=1)  # today, by the server's clock
    officer.fill("#date", dmy(session_day))
    officer.select_option("#vaccine", "COVAXIN")
    officer.fill("#min_age", "18")
    officer.fill("#max_age", "")
    officer.fill("#walkin_allowance", "2")
    officer.fill("#slot_0_label", "04:00PM-05:00PM")
    officer.fill("#slot_0_dose1", "5")
    for i in (1, 2, 3):
        officer.fill(f"#slot_{i}_label", "")
    screenshot(officer, "district-02-publish-form", full_page=False)
    assert_accessible(officer, "staff-district-centre")
    with officer.expect_navigation():
        officer.click("#publish-submit")
    assert "notice=published" in officer.url, officer.locator("#session-error").all_inner_texts()
    session_id = officer.url.rsplit("#session-", 1)[1]
    section = officer.locator(f"#session-{session_id}")
    expect(section).to_contain_text("COVAXIN")
    screenshot(officer, "district-03-published", full_page=False)

    # A citizen finds it on the home page (Raipur, today) and books it.
    home = new_context().new_page()
    home.goto(f"/?district_id=109&date={session_day.isoformat()}")
    expect(home.locator(f'a[href="/book/{session_id}"]')).to_have_count(1)
    home.context.close()
    person = Person(name="Kavita Dhruw", birth_year=1992)
    citizen, number = _citizen_books(new_context, live_server, session_id, person,
                                     shots="district-04-citizen")
    expect(citizen.locator("main")).to_contain_text("COVAXIN")

    # The officer sees the place taken.
    officer.reload()
    expect(officer.locator(f"#session-{session_id} [data-booked]").first).to_have_text("1")

    # The vaccinator at Pandri finds the person, checks the secret code and records the dose.
    vaccinator = staff_page("vaccinator", shots="vaccinator")
    assert vaccinator.url.endswith("/staff/centre"), vaccinator.url
    screenshot(vaccinator, "vaccinator-01-today")
    _find_at_centre(vaccinator, person.reference_id)
    expect(vaccinator.locator("#dose")).to_contain_text("COVAXIN")
    vaccinator.fill("#secret_code", person.secret_code)
    vaccinator.fill("#batch", "CVX-2107")
    screenshot(vaccinator, "vaccinator-02-check-code")
    with vaccinator.expect_navigation():
        vaccinator.click("#record-submit")
    expect(vaccinator.locator("#dose-recorded")).to_be_visible()
    expect(vaccinator.locator("#batch")).to_have_text("CVX-2107")
    screenshot(vaccinator, "vaccinator-03-recorded")

    # The citizen's page shows the dose.
    citizen.goto("/me")
    card = citizen.locator(f"#person-{person.reference_id}")
    expect(card.locator(".dose-status")).to_contain_text("1")
    expect(card.locator(".appointment")).to_have_count(0)
    citizen.goto(f"/me/people/{person.reference_id}")
    expect(citizen.locator("main table")).to_contain_text("COVAXIN")
    screenshot(citizen, "district-05-citizen-vaccinated")
    assert number

    # Their certificate, with its QR code; anyone checks its text on /verify.
    citizen.goto("/me")
    with citizen.expect_navigation():
        citizen.click(f"#certificate-{person.reference_id}")
    expect(citizen.locator("#cert-qr")).to_be_visible()
    screenshot(citizen, "district-06-certificate")
    assert_accessible(citizen, "citizen-certificate")
    hc1 = citizen.locator("#cert-hc1").text_content() or ""
    assert hc1.startswith("HC1:"), hc1[:20]
    checker = new_context().new_page()
    checker.goto("/verify")
    checker.fill("#hc1", hc1)
    with checker.expect_navigation():
        checker.click("#verify-submit")
    expect(checker.locator("#verify-result")).to_have_attribute("data-valid", "yes")
    assert_accessible(checker, "verify")


def test_district_closes_a_session_and_the_person_booked_is_moved(
        staff_page: StaffPageFactory, new_context: NewContext, live_server: str) -> None:
    """A session that cannot go ahead: the officer ticks the box and closes it; the person
    booked in it is moved to a place nearby (or cancelled), and their page no longer shows the
    closed session's slot."""
    officer = staff_page("raipur", shots="close")
    officer.goto("/staff/district")  # signed in already when another journey ran first
    with officer.expect_navigation():
        officer.locator("#centres tr").filter(has_text=PANDRI).locator(
            'a[id^="centre-link-"]').click()
    officer.select_option("#vaccine", "COVAXIN")  # tomorrow, the form's default date
    officer.fill("#min_age", "18")
    officer.fill("#max_age", "")
    officer.fill("#slot_0_label", "05:00PM-06:00PM")
    officer.fill("#slot_0_dose1", "2")
    for i in (1, 2, 3):
        officer.fill(f"#slot_{i}_label", "")
    with officer.expect_navigation():
        officer.click("#publish-submit")
    assert "notice=published" in officer.url, officer.locator("#session-error").all_inner_texts()
    session_id = officer.url.rsplit("#session-", 1)[1]
    person = Person(name="Ramesh Sahu", birth_year=1988)
    citizen, _number = _citizen_books(new_context, live_server, session_id, person)
    citizen.goto("/me")
    card = citizen.locator(f"#person-{person.reference_id}")
    expect(card.locator(".appointment-slot")).to_have_text("05:00PM-06:00PM")

    officer.reload()
    officer.check(f"#close-confirm-{session_id}")
    screenshot(officer, "district-06-close-session", full_page=False)
    with officer.expect_navigation():
        officer.click(f"#close-{session_id}")
    assert "notice=closed" in officer.url, officer.url
    expect(officer.locator("#displaced")).to_be_visible()
    moved, cancelled = (int(n) for n in re.findall(r"\d+", officer.inner_text("#displaced")))
    assert (moved, cancelled) in ((1, 0), (0, 1))
    expect(officer.locator(f"#close-{session_id}")).to_have_count(0)
    screenshot(officer, "district-07-session-closed", full_page=False)

    citizen.reload()
    expect(card).to_be_visible()
    assert "05:00PM-06:00PM" not in card.inner_text()
    expect(card.locator(".appointment")).to_have_count(moved)


def test_wrong_secret_code_is_stopped_with_an_alert(
        staff_page: StaffPageFactory, new_context: NewContext, live_server: str) -> None:
    # Someone booked today at Pandri (a 45+ session of the demo week).
    home = new_context().new_page()
    home.goto("/?district_id=109")
    link = home.locator("section.centre").filter(has_text=PANDRI).locator(
        'tr:has-text("45+") a[href^="/book/"]').first
    session_id = (link.get_attribute("href") or "").rsplit("/", 1)[1]
    person = Person(name="Manoj Patel", birth_year=1960, gender="male")
    _citizen_books(new_context, live_server, session_id, person)

    vaccinator = staff_page("vaccinator")
    _find_at_centre(vaccinator, person.reference_id)
    wrong = f"{(int(person.secret_code) + 1) % 10000:04d}"
    vaccinator.fill("#secret_code", wrong)
    vaccinator.fill("#batch", "CVS-1001")
    with vaccinator.expect_navigation():
        vaccinator.click("#record-submit")
    alert = vaccinator.locator("[role=alert]#alert")
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("data-code", re.compile("SecretCode"))
    expect(vaccinator.locator("#batch")).to_have_value("CVS-1001")  # what was typed is kept
    expect(vaccinator.locator("#secret_code")).to_have_value("")  # the code is never echoed
    screenshot(vaccinator, "vaccinator-04-wrong-code")
    assert_accessible(vaccinator, "staff-vaccinator-alert")
    # Nothing was recorded: the appointment is still booked.
    vaccinator.goto("/staff/centre?ref=" + person.reference_id)
    expect(vaccinator.locator('#results a[href^="/staff/centre/appointments/"]')).to_have_count(1)


def test_help_desk_registers_books_and_prints_a_slip(staff_page: StaffPageFactory) -> None:
    desk = staff_page("helpdesk", shots="helpdesk")
    assert desk.url.endswith("/staff/helpdesk"), desk.url
    desk.fill("#name", "Phoolbai Nishad")
    desk.fill("#birth_year", "1952")
    desk.select_option("#gender", "female")
    desk.select_option("#id_type", "aadhaar")
    desk.fill("#id_number", new_aadhaar())
    desk.select_option("#priority_group", "none")
    screenshot(desk, "helpdesk-01-register")
    assert_accessible(desk, "staff-helpdesk")
    with desk.expect_navigation():
        desk.click("#register-submit")
    assert "notice=registered" in desk.url, desk.locator("#form-error").all_inner_texts()
    reference_id = desk.locator("#reference-id").inner_text().strip()
    secret_code = desk.locator("#secret-code").inner_text().strip()
    assert re.fullmatch(r"\d{14}", reference_id) and re.fullmatch(r"\d{4}", secret_code)
    expect(desk.locator("#no-appointment")).to_be_visible()

    with desk.expect_navigation():
        desk.click("#book-link")
    desk.locator('fieldset.session:has(legend:has-text("45+")) input[name=choice]').first.check()
    screenshot(desk, "helpdesk-02-book", full_page=False)
    with desk.expect_navigation():
        desk.click("#book-submit")
    assert "notice=booked" in desk.url, desk.locator("#form-error").all_inner_texts()
    expect(desk.locator("#appointment")).to_be_visible()
    screenshot(desk, "helpdesk-03-booked")

    with desk.expect_navigation():
        desk.click("#slip-link")
    assert "/slip/person/" in desk.url
    slip = desk.locator("main").inner_text()
    assert reference_id in slip and secret_code in slip
    expect(desk.locator("main")).to_contain_text(re.compile(r"\d{2}-\d{2}-\d{4}"))
    screenshot(desk, "helpdesk-04-slip")
    pdf = ARTIFACTS / "slips" / f"{engine()}-helpdesk-slip.pdf"
    pdf.parent.mkdir(parents=True, exist_ok=True)
    desk.emulate_media(media="print")
    desk.pdf(path=str(pdf), format="A5", print_background=True)
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000


def test_vaccinator_works_offline_from_the_day_sheet_and_uploads_it(
        staff_page: StaffPageFactory, new_context: NewContext, live_server: str,
        tmp_path) -> None:
    """The sheet is saved while the network works; the dose is written on it; the filled
    sheet uploaded later records the dose once (and again: nothing more)."""
    home = new_context().new_page()
    home.goto("/?district_id=109")
    link = home.locator("section.centre").filter(has_text=PANDRI).locator(
        'tr:has-text("45+") a[href^="/book/"]').first
    session_id = (link.get_attribute("href") or "").rsplit("/", 1)[1]
    person = Person(name="Kamla Sahu", birth_year=1958, gender="female")
    _citizen_books(new_context, live_server, session_id, person)

    vaccinator = staff_page("vaccinator")
    vaccinator.goto("/staff/centre")
    with vaccinator.expect_navigation():
        vaccinator.click("#nav-day-sheet")
    expect(vaccinator.locator(f'#sheet tr:has-text("{person.reference_id}")')).to_have_count(1)
    screenshot(vaccinator, "vaccinator-05-day-sheet")
    assert_accessible(vaccinator, "staff-day-sheet")
    with vaccinator.expect_download() as got:
        vaccinator.click("#sheet-csv")
    sheet = got.value.path().read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(sheet)))
    for row in rows:
        if row["reference_id"] == person.reference_id:
            row.update(secret_code=person.secret_code, batch="CVS-1001",
                       given_at=earlier_today().astimezone(clock.LOCAL_TZ).strftime("%H:%M"))
    filled = tmp_path / "filled.csv"
    with filled.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    for already in (0, 1):
        with vaccinator.expect_navigation():
            vaccinator.click("#nav-sync")
        vaccinator.set_input_files("#file", str(filled))
        with vaccinator.expect_navigation():
            vaccinator.click("#sync-submit")
        expect(vaccinator.locator("#notice")).to_contain_text(re.compile(
            rf"Recorded: {1 - already}\. Already recorded: {already}\.|"
            rf"दर्ज हुईं: {1 - already}। पहले से दर्ज: {already}।"))
    screenshot(vaccinator, "vaccinator-06-synced")
    assert_accessible(vaccinator, "staff-sync")


def test_a_centre_raises_a_problem_and_the_operator_resolves_it(
        staff_page: StaffPageFactory) -> None:
    """The vaccinator tells the state the network is down; the operator sees it on the watch
    page, takes it and resolves it; the vaccinator sees it resolved."""
    vaccinator = staff_page("vaccinator")
    vaccinator.goto("/staff/centre")
    with vaccinator.expect_navigation():
        vaccinator.click("#nav-problems")
    with vaccinator.expect_navigation():
        vaccinator.click("#raise")
    vaccinator.check("#severity-urgent")
    vaccinator.fill("#title", "Network down since morning")
    vaccinator.fill("#details", "Working from the day sheet.\nAbout 80 people waiting.")
    with vaccinator.expect_navigation():
        vaccinator.click("#problem-submit")
    expect(vaccinator.locator("#notice")).to_be_visible()
    problem_url = vaccinator.url.split("?")[0]
    assert_accessible(vaccinator, "staff-problem")

    operator = staff_page("admin")
    operator.goto("/staff/watch")
    expect(operator.locator('[data-trouble="urgent_problem"]')).to_be_visible()
    screenshot(operator, "operator-01-watch")
    assert_accessible(operator, "staff-watch")
    operator.goto(problem_url)
    with operator.expect_navigation():
        operator.click("#move-acknowledged")
    expect(operator.locator("#status")).to_have_attribute("data-status", "acknowledged")
    operator.fill("#text", "BSNL line restored at 11:40.")
    with operator.expect_navigation():
        operator.click("#move-resolved")
    expect(operator.locator("#status")).to_have_attribute("data-status", "resolved")
    screenshot(operator, "operator-02-resolved")

    vaccinator.goto(problem_url)
    expect(vaccinator.locator("#status")).to_have_attribute("data-status", "resolved")
    expect(vaccinator.locator("#notes")).to_contain_text("BSNL line restored at 11:40.")
