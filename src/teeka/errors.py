"""Domain errors: a stable code, an HTTP status and an English message that is also the
gettext msgid of its Hindi translation. One handler (teeka.web.errors) renders them."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "ERROR"
    status: ClassVar[int] = 400
    message: ClassVar[str] = "The request could not be completed."
    retry_after: ClassVar[int | None] = None
    # True when the unit of work must commit what it did before the error (a counted wrong try).
    keeps_changes: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        super().__init__(self.code)
        self.params = params

    def text(self, lang: str) -> str:
        """The message in `lang`. A `detail` that is itself a msgid (a literal of the code,
        e.g. `Invalid(detail="birth year must have 4 digits")`, collected by
        teeka.i18n_catalogue) is translated too, filled from the other params; any other detail
        (built from input, e.g. field names) is shown as it is, never used as a template."""
        from teeka.i18n import is_msgid, translate

        params = self.params
        detail = params.get("detail")
        if isinstance(detail, str) and is_msgid(detail):
            rest = {k: v for k, v in params.items() if k != "detail"}
            params = {**params, "detail": translate(lang, detail, **rest)}
        return translate(lang, self.message, **params)


def _error(code: str, status: int, message: str, retry_after: int | None = None,
           keeps_changes: bool = False) -> type[DomainError]:
    return type(code, (DomainError,), {"code": code, "status": status, "message": message,
                                       "retry_after": retry_after, "keeps_changes": keeps_changes})


# Generic
Invalid = _error("Invalid", 400, "Some of the details are not valid: {detail}")
NotFound = _error("NotFound", 404, "Not found.")
MethodNotAllowed = _error("MethodNotAllowed", 405,
                          "This address cannot be opened this way. Go back to the previous page "
                          "and try again.")
Unauthenticated = _error("Unauthenticated", 401, "Unauthenticated access!")
Forbidden = _error("Forbidden", 403, "You are not allowed to do this.")
SecondFactorNotSetUp = _error("SecondFactorNotSetUp", 403,
                              "Set up the second factor first: sign in once at /staff/login.")
SecondFactorWrong = _error("SecondFactorWrong", 401,
                           "The second-factor code is not right. Use the current code.",
                           keeps_changes=True)
SecondFactorLocked = _error("SecondFactorLocked", 429,
                            "Too many wrong codes. Please try again in 15 minutes.", 900)
RateLimited = _error("RateLimited", 429,
                     "Too many requests. Please try again in {seconds} seconds.", 60)
Busy = _error("Busy", 503, "The system is busy. Please try again in a few seconds.", 2)

# Citizen login
InvalidMobile = _error("InvalidMobile", 400, "Please enter a valid 10-digit mobile number.")
OtpInvalid = _error("OtpInvalid", 401, "Invalid OTP. Please check the code and try again.",
                    keeps_changes=True)
OtpExpired = _error("OtpExpired", 401, "This OTP has expired. Please ask for a new one.")
OtpTooManyTries = _error("OtpTooManyTries", 429,
                         "Too many wrong tries for this OTP. Please ask for a new one.", 60,
                         keeps_changes=True)
OtpResendTooSoon = _error("OtpResendTooSoon", 429,
                          "Please wait {seconds} seconds before asking for another OTP.", 30)
OtpDailyLimit = _error("OtpDailyLimit", 429,
                       "Too many OTPs for this number today. Please try again tomorrow.", 3600)

# Beneficiaries
TooManyBeneficiaries = _error("TooManyBeneficiaries", 409,
                              "One mobile number can register at most {limit} people.")
DuplicateIdDocument = _error("DuplicateIdDocument", 409,
                             "This ID document is already registered.")
BeneficiaryHasDoses = _error("BeneficiaryHasDoses", 409,
                             "A person who has received a dose cannot be deleted.")

# Eligibility
AgeNotEligible = _error("AgeNotEligible", 422,
                        "This session is for ages {band}; the person is {age}.")
WrongDose = _error("WrongDose", 422, "The person is due dose {expected}, not dose {asked}.")
WrongVaccine = _error("WrongVaccine", 422,
                      "The next dose must be of the same vaccine ({vaccine}).")
DoseTooEarly = _error("DoseTooEarly", 422, "Dose {dose} can be given from {earliest}.")
DoseWindowPassed = _error("DoseWindowPassed", 422,
                          "The window for dose {dose} closed on {latest}.")
ScheduleComplete = _error("ScheduleComplete", 422, "The person has completed the schedule.")
AlreadyBooked = _error("AlreadyBooked", 409, "The person already has an active appointment.")
SessionPast = _error("SessionPast", 422, "This session date has passed.")

# Capacity
SlotFull = _error("SlotFull", 409, "No places are left in this slot.")
CapacityBelowBooked = _error("CapacityBelowBooked", 409,
                             "Capacity cannot be reduced below the {booked} places already booked "
                             "unless the people affected are moved to other places and told "
                             "(choose to move them).")
WalkinsExhausted = _error("WalkinsExhausted", 409, "The walk-in allowance for this session is used up.")
IdempotencyKeyReused = _error("IdempotencyKeyReused", 422,
                              "This request key was already used for a different booking.")
NotReschedulable = _error("NotReschedulable", 409, "Only a booked appointment can be changed.")

# Waiting room
QueueTokenInvalid = _error("QueueTokenInvalid", 403,
                           "This waiting-room ticket is not valid. Please join the queue again.")
NotOpenYet = _error("NotOpenYet", 409, "These places open at {at}. Join the queue to get a turn.")
HoldRequired = _error("HoldRequired", 409,
                      "These places are given out through the waiting room. Join the queue; "
                      "when your turn comes, places are kept for you.")
HoldTooSmall = _error("HoldTooSmall", 409,
                      "Places are still kept for this many people of your account: {size}. "
                      "Book for at most that many now; anyone else on your account can be "
                      "booked once this waiting room has closed, if places are left.")
BookingInProgress = _error("BookingInProgress", 409,
                           "Another booking of yours is being made right now. Wait a few "
                           "seconds and look at your appointments before you try again.", 5)
PlacesKept = _error("PlacesKept", 409,
                    "The places left in this slot are kept for other people admitted from the "
                    "waiting room. Choose another slot or centre.")
OpeningsOverlap = _error("OpeningsOverlap", 409,
                         "Opening {opening} still gives out places here and has not closed. A "
                         "second opening here would give out the same places twice; places "
                         "published now are added to it.")
PlacesHeld = _error("PlacesHeld", 409,
                    "Every free place here is being kept for people admitted from the waiting "
                    "room. Try again in a few minutes, when their places are used or given back.")

# Certificates
CertificateNotIssued = _error("CertificateNotIssued", 404,
                              "The certificate has not been issued yet.")

# At the centre
# Keeps its unit of work: the audit entry of the wrong try is committed (it counts towards the lock).
SecretCodeWrong = _error("SecretCodeWrong", 403, "The secret code does not match.",
                         keeps_changes=True)
SecretCodeLocked = _error("SecretCodeLocked", 429,
                          "Too many wrong secret codes for this person today. Ask the person "
                          "for their slip or registration details.", 3600)
AppointmentNotBooked = _error("AppointmentNotBooked", 409, "This appointment is not booked.")
WrongCentre = _error("WrongCentre", 403, "This appointment is at another centre.")
OutsideDistrict = _error("OutsideDistrict", 403,
                         "You can book only at centres of your own district.")
RegisteredElsewhere = _error("RegisteredElsewhere", 403,
                             "This person was registered by another district's help desk: "
                             "only that district (or the state) can delete them.")
NotToday = _error("NotToday", 422, "This appointment is not for today.")
SheetDayOutOfRange = _error("SheetDayOutOfRange", 422,
                            "A day sheet is for tomorrow, today or one of the last {days} days.")
AppointmentChanged = _error("AppointmentChanged", 409,
                            "This appointment was moved or cancelled after the day sheet was "
                            "downloaded. The dose given is kept in the list to resolve.")
OfflineResolved = _error("OfflineResolved", 409,
                         "This dose given offline has been resolved already.")
OfflineNotRecordable = _error(
    "OfflineNotRecordable", 409,
    "The district can record a dose given offline only when it was refused because the "
    "appointment changed, the person had another appointment, or the walk-in places ran out. "
    "Ask the centre to upload a corrected line, or dismiss it with a note.")
NoteNeeded = _error("NoteNeeded", 422,
                    "Write a note (at least 5 characters) saying what was checked or done.")


# Problems (teeka.watch)
ProblemMoveRefused = _error("ProblemMoveRefused", 409,
                            "This problem cannot move to that status from where it is now.")
ProblemChanged = _error("ProblemChanged", 409,
                        "This problem changed since you opened it. Read the latest note and "
                        "try again.")
ServerStillReporting = _error("ServerStillReporting", 409,
                              "This server process is still reporting. Only one that stopped "
                              "reporting can be marked as taken out of service.")
