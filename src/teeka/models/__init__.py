"""Every table, imported here so that Alembic and tests see the whole schema."""

from teeka.models.audit import AuditEntry
from teeka.models.booking import Appointment, AppointmentStatus, Booking
from teeka.models.centre import Centre, CentreFee, FeeType
from teeka.models.citizen import Account, Beneficiary, BeneficiaryStatus, OtpChallenge
from teeka.models.geography import Block, District, State
from teeka.models.outbox import DevSms, OutboxMessage, OutboxStatus
from teeka.models.schedule import (
    CapacityBucket,
    DoseKind,
    Opening,
    SessionSlot,
    Share,
    VaccinationSession,
)
from teeka.models.staff import Role, StaffUser
from teeka.models.vaccination import DoseRecord, OfflineDose
from teeka.models.vaccine import Vaccine, VaccineInterval
from teeka.models.watch import Problem, ProblemNote, ProblemStatus, ServerBeat, Severity

__all__ = [
    "Account", "Appointment", "AppointmentStatus", "AuditEntry", "Beneficiary",
    "BeneficiaryStatus", "Block", "Booking", "CapacityBucket", "Centre", "CentreFee", "DevSms",
    "District", "DoseKind", "DoseRecord", "FeeType", "OfflineDose", "Opening", "OtpChallenge",
    "OutboxMessage", "OutboxStatus", "Problem", "ProblemNote", "ProblemStatus", "Role",
    "ServerBeat",
    "SessionSlot", "Severity", "Share", "StaffUser", "State", "VaccinationSession", "Vaccine",
    "VaccineInterval",
]
