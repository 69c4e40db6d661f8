"""Who is asking. Every service takes an Actor; scoping goes through teeka.auth.access."""

from __future__ import annotations

from dataclasses import dataclass

from teeka.models.staff import Role, StaffUser


@dataclass(frozen=True)
class Actor:
    kind: str  # "citizen" | "staff" | "system"
    id: int
    role: str | None = None
    district_id: int | None = None
    centre_id: int | None = None

    @property
    def label(self) -> str:
        return "system" if self.kind == "system" else f"{'account' if self.kind == 'citizen' else 'staff'}:{self.id}"

    @property
    def is_citizen(self) -> bool:
        return self.kind == "citizen"

    @classmethod
    def for_staff(cls, staff: StaffUser) -> Actor:
        return cls(kind="staff", id=staff.id, role=staff.role, district_id=staff.district_id,
                   centre_id=staff.centre_id)

    def has_role(self, *roles: Role) -> bool:
        return self.kind == "staff" and self.role in roles


SYSTEM = Actor(kind="system", id=0)
