"""Configuration of the sandbox: data scale, OAuth client apps and fault knobs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"
ALL_SCOPES: frozenset[str] = frozenset(
    {"read_accounts", "read_bookings", "read_equipment", "read_projects", "read_user"}
)
DEFAULT_REFERENCE_TIME = datetime(2026, 11, 1, tzinfo=UTC)

ListShape = Literal["full", "slim"]
ListOrder = Literal["newest", "oldest", "shuffled"]
PayloadProfile = Literal["current", "2022"]
LIST_ORDERS: tuple[ListOrder, ...] = ("newest", "oldest", "shuffled")
PAYLOAD_PROFILES: tuple[PayloadProfile, ...] = ("current", "2022")
RetryAfterForm = Literal["seconds", "http-date", "zero", "mixed"]


@dataclass(frozen=True)
class Scale:
    """How big the synthetic customer is.

    Labs are, in creation order: per organisation ``labs_per_org`` labs directly under it and
    ``departments_per_org * labs_per_department`` labs in departments, then
    ``independent_labs``. The last ``empty_labs`` labs get no equipment and no bookings.
    """

    organisations: int
    departments_per_org: int
    labs_per_department: int
    labs_per_org: int
    independent_labs: int
    instruments: int
    bookings: int
    projects_per_lab: int = 2
    groups_per_lab: int = 2
    users_per_lab: int = 6
    empty_labs: int = 1
    child_fraction: float = 0.2

    @property
    def lab_count(self) -> int:
        per_org = self.labs_per_org + self.departments_per_org * self.labs_per_department
        return self.organisations * per_org + self.independent_labs

    def __post_init__(self) -> None:
        if self.lab_count < 1:
            raise ValueError("a Scale needs at least one lab")
        if self.empty_labs >= self.lab_count and (self.instruments or self.bookings):
            raise ValueError("every lab is empty but instruments/bookings were requested")
        if self.users_per_lab < 1:
            raise ValueError("every lab needs at least one user (bookings need requesters)")
        if self.bookings and not self.instruments:
            raise ValueError("bookings need at least one instrument")


SCALES: dict[str, Scale] = {
    "tiny": Scale(
        organisations=1, departments_per_org=1, labs_per_department=2, labs_per_org=1,
        independent_labs=2, instruments=12, bookings=200, projects_per_lab=2, groups_per_lab=2,
        users_per_lab=4,
    ),
    "small": Scale(
        organisations=2, departments_per_org=2, labs_per_department=2, labs_per_org=1,
        independent_labs=2, instruments=50, bookings=2_000, projects_per_lab=3, groups_per_lab=2,
    ),
    # Fewer instruments booked as busily as a real core facility (~375 bookings per instrument
    # a year): what the demo and the UI show by default.
    "demo": Scale(
        organisations=2, departments_per_org=1, labs_per_department=2, labs_per_org=1,
        independent_labs=1, instruments=40, bookings=30_000, projects_per_lab=3, groups_per_lab=2,
    ),
    "medium": Scale(
        organisations=4, departments_per_org=3, labs_per_department=2, labs_per_org=1,
        independent_labs=2, instruments=500, bookings=50_000, projects_per_lab=4,
        groups_per_lab=3, users_per_lab=15,
    ),
    "large": Scale(
        organisations=6, departments_per_org=5, labs_per_department=3, labs_per_org=1,
        independent_labs=4, instruments=5_000, bookings=1_000_000, projects_per_lab=5,
        groups_per_lab=4, users_per_lab=40,
    ),
}


def resolve_scale(scale: str | Scale) -> Scale:
    if isinstance(scale, Scale):
        return scale
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}") from None


@dataclass(frozen=True)
class ClientApp:
    """An OAuth application registered with the sandbox."""

    secret: str
    scopes: frozenset[str] = ALL_SCOPES
    allow_client_credentials: bool = True


def _default_clients() -> Mapping[str, ClientApp]:
    return {SANDBOX_CLIENT_ID: ClientApp(SANDBOX_CLIENT_SECRET, ALL_SCOPES)}


@dataclass(frozen=True)
class FaultConfig:
    """Misbehaviour to inject. Deterministic for a given ``seed`` and request order."""

    latency_ms: float = 0
    rate_limit_rps: float | None = None
    rate_limit_burst: int = 10
    retry_after: RetryAfterForm = "seconds"
    error_rate: float = 0.0
    head_inserts_per_page: int = 0
    truncated_json_rate: float = 0.0
    missing_headers_rate: float = 0.0
    wrong_total_rate: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class SandboxConfig:
    seed: int = 0
    scale: str | Scale = "small"
    list_shape: ListShape = "full"
    live_aliases: bool = False
    # Shapes of older or odder deployments (see "Older payload shapes" in the API notes):
    # every list's order (the docs promise newest-first; a captured production list was not),
    # GET /accounts items as {id, name, account_type} only, the 2022 booking payloads (details
    # without currency, times, local times, creator or requester group; 0.1.3 lists), and the
    # share of bookings whose list item says another status than their detail.
    list_order: ListOrder = "newest"
    account_list: ListShape = "full"
    payload_profile: PayloadProfile = "current"
    list_disagreement_rate: float = 0.0
    token_lifetime_s: float = 7200
    clients: Mapping[str, ClientApp] = field(default_factory=_default_clients)
    faults: FaultConfig = FaultConfig()
    # The generator reads this instead of the wall clock so the data never drifts.
    reference_time: datetime = DEFAULT_REFERENCE_TIME
    # Only token expiry and rate limiting consult the clock.
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.list_shape not in ("full", "slim"):
            raise ValueError(f"list_shape must be 'full' or 'slim', not {self.list_shape!r}")
        if self.list_order not in LIST_ORDERS:
            raise ValueError(f"list_order must be one of {LIST_ORDERS}, not {self.list_order!r}")
        if self.account_list not in ("full", "slim"):
            raise ValueError(f"account_list must be 'full' or 'slim', not {self.account_list!r}")
        if self.payload_profile not in PAYLOAD_PROFILES:
            raise ValueError(
                f"payload_profile must be one of {PAYLOAD_PROFILES}, not {self.payload_profile!r}"
            )
        if not 0.0 <= self.list_disagreement_rate <= 1.0:
            raise ValueError("list_disagreement_rate must lie in [0, 1]")
        if self.reference_time.tzinfo is None:
            raise ValueError("reference_time must be timezone-aware")
        resolve_scale(self.scale)
