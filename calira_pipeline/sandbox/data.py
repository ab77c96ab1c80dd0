"""The sandbox's truth: every record the API can return, built deterministically from a seed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from calira_pipeline.sandbox.bookings import BookingStore
from calira_pipeline.sandbox.config import Scale
from calira_pipeline.sandbox.generate import Window, generate_bookings, zone_tables
from calira_pipeline.sandbox.world import EQUIPMENT_ID0, GROUP_ID0, JSON, World, build_world
from calira_pipeline.sandbox.zones import ZoneTable


@dataclass
class Dataset:
    """Canonical full-detail JSON, exactly what the details endpoints return before aliasing.

    Projects keep their ``id`` here although the project details endpoint omits it (as the docs
    show). ``bookings`` is a lazy sequence of dicts, oldest (lowest id) first.
    """

    accounts: list[JSON]
    equipment: list[JSON]
    bookings: BookingStore
    projects: dict[int, list[JSON]]
    groups: list[JSON]
    users: list[JSON]
    me: JSON
    group_account: Mapping[int, int]  # group id -> lab it is listed under
    labs_under: Mapping[int, list[int]]  # account id -> lab ids (itself for a lab)
    zone_tables: Mapping[str, ZoneTable]
    window: Window
    _accounts_by_id: dict[int, JSON] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._accounts_by_id = {a["id"]: a for a in self.accounts}

    def account(self, account_id: int) -> JSON | None:
        return self._accounts_by_id.get(account_id)

    def equipment_index(self, equipment_id: int) -> int | None:
        idx = equipment_id - EQUIPMENT_ID0
        return idx if 0 <= idx < len(self.equipment) else None

    def group(self, group_id: int) -> JSON | None:
        idx = group_id - GROUP_ID0
        return self.groups[idx] if 0 <= idx < len(self.groups) else None


def build_dataset(scale: Scale, seed: int, reference_time: datetime) -> Dataset:
    world: World = build_world(scale, seed)
    window = Window.around(reference_time)
    tables = zone_tables(world, window)
    columns = generate_bookings(world, scale, seed, window, tables)
    me_user = world.users[0]
    return Dataset(
        accounts=world.accounts,
        equipment=world.equipment,
        bookings=BookingStore(columns, world),
        projects=world.projects,
        groups=world.groups,
        users=world.users,
        me={k: me_user[k] for k in ("id", "first_name", "last_name", "email")},
        group_account=world.group_account,
        labs_under=world.labs_under,
        zone_tables=tables,
        window=window,
    )
