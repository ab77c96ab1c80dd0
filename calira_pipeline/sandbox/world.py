"""The customer around the bookings: accounts, users, equipment, groups and projects."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from calira_pipeline.sandbox import names
from calira_pipeline.sandbox.config import Scale

JSON = dict[str, Any]
ORG_ID0, DEPT_ID0, LAB_ID0 = 1001, 2001, 3001
USER_ID0, EQUIPMENT_ID0, GROUP_ID0, SUBCAT_ID0 = 20001, 5001, 301, 41


def ref(obj: JSON) -> JSON:
    return {"id": obj["id"], "name": obj["name"]}


@dataclass
class Lab:
    index: int
    account: JSON
    zone: str
    city: str
    country: str
    currency: str
    sector: str
    org_ref: JSON  # the lab itself for independent labs, as the live API sends it
    peer_key: int  # labs sharing this key are one organisation (internal requesters)
    user_ids: list[int] = field(default_factory=list)
    equipment_ids: list[int] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)


@dataclass
class World:
    accounts: list[JSON] = field(default_factory=list)
    labs: list[Lab] = field(default_factory=list)
    users: list[JSON] = field(default_factory=list)
    user_lab: list[int] = field(default_factory=list)
    equipment: list[JSON] = field(default_factory=list)
    equipment_lab: list[int] = field(default_factory=list)
    groups: list[JSON] = field(default_factory=list)
    group_account: dict[int, int] = field(default_factory=dict)
    user_group_name: dict[int, str] = field(default_factory=dict)
    projects: dict[int, list[JSON]] = field(default_factory=dict)
    labs_under: dict[int, list[int]] = field(default_factory=dict)  # account id -> lab ids


def _account(aid: int, name: str, kind: str, sector: str, zone: str) -> JSON:
    return {"id": aid, "name": name, "account_type": kind, "sector": sector,
            "description": f"{name} ({kind})" if aid % 3 else None, "timezone": zone,
            "department": None, "organisation": None}


def _lab_name(i: int) -> str:
    base = names.LABS[i % len(names.LABS)]
    return base if i < len(names.LABS) else f"{base} {i // len(names.LABS) + 1}"


def _add_labs(world: World, scale: Scale) -> None:
    orgs: list[JSON] = []
    depts: list[JSON] = []
    lab_specs: list[tuple[JSON | None, JSON | None, str, int]] = []  # org, dept, sector, peer
    for o in range(scale.organisations):
        oname, sector = names.ORGANISATIONS[o % len(names.ORGANISATIONS)]
        org = _account(ORG_ID0 + o, oname if o < 6 else f"{oname} {o}", "organisation", sector, "")
        org["labs"], org["departments"] = [], []
        orgs.append(org)
        lab_specs += [(org, None, sector, o)] * scale.labs_per_org
        for d in range(scale.departments_per_org):
            dname = names.DEPARTMENTS[(o + d) % len(names.DEPARTMENTS)]
            dept = _account(DEPT_ID0 + len(depts), dname, "department", sector, "")
            dept["organisation"], dept["labs"] = ref(org), []
            depts.append(dept)
            lab_specs += [(org, dept, sector, o)] * scale.labs_per_department
    for i in range(scale.independent_labs):
        lab_specs.append((None, None, ("industry", "academia")[i % 2], scale.organisations + i))
    for i, (lab_org, lab_dept, sector, peer) in enumerate(lab_specs):
        zone, city, country, own_currency = names.SITES[i % len(names.SITES)]
        acct = _account(LAB_ID0 + i, _lab_name(i), "lab", sector, zone)
        acct["department"] = ref(lab_dept) if lab_dept else None
        acct["organisation"] = ref(lab_org) if lab_org else None
        pool = names.ORG_CURRENCIES[peer % len(names.ORG_CURRENCIES)]
        currency = pool[i % len(pool)] if lab_org else own_currency
        lab = Lab(i, acct, zone, city, country, currency, sector, ref(lab_org or acct), peer)
        world.labs.append(lab)
        world.labs_under[acct["id"]] = [acct["id"]]
        for parent in (lab_org, lab_dept):
            if parent is not None:
                parent.setdefault("labs", []).append(ref(acct))
                world.labs_under.setdefault(parent["id"], []).append(acct["id"])
                parent["timezone"] = parent["timezone"] or zone
    for org in orgs:
        org["departments"] = [ref(d) for d in depts if d["organisation"]["id"] == org["id"]]
    for parent in orgs + depts:
        parent["timezone"] = parent["timezone"] or names.SITES[0][0]  # an account with no labs
    world.accounts = orgs + depts + [lab.account for lab in world.labs]


def _add_users(world: World, scale: Scale, rng: random.Random) -> None:
    for lab in world.labs:
        domain = lab.org_ref["name"].lower().replace(" ", "").replace("&", "")[:16] + ".example"
        for _ in range(scale.users_per_lab):
            uid = USER_ID0 + len(world.users)
            first, last = rng.choice(names.FIRST_NAMES), rng.choice(names.LAST_NAMES)
            email = f"{first}.{last}{uid}@{domain}".lower().replace("'", "")
            world.users.append({"id": uid, "first_name": first, "last_name": last,
                                "name": f"{first} {last}", "email": email, "sector": lab.sector})
            world.user_lab.append(lab.index)
            lab.user_ids.append(uid)


def _instrument_counts(scale: Scale, rng: random.Random) -> list[int]:
    active = scale.lab_count - scale.empty_labs
    counts = [0] * scale.lab_count
    if active <= 0:
        return counts
    weights = [rng.lognormvariate(0, 0.6) for _ in range(active)]
    for n in range(scale.instruments):
        lab = n if n < active else rng.choices(range(active), weights)[0]
        counts[lab] += 1
    return counts


def _add_equipment(world: World, scale: Scale, rng: random.Random) -> None:
    for lab, count in zip(world.labs, _instrument_counts(scale, rng), strict=True):
        tops: list[JSON] = []
        for k in range(count):
            parent = rng.choice(tops) if tops and rng.random() < scale.child_fraction else None
            if k == 1 and lab.index == 0 and parent is None:
                parent = tops[0]  # guarantee one parent/child pair exists
            item = _equipment(world, lab, parent, rng)
            if parent is None:
                tops.append(item)


def _room(rng: random.Random) -> str:
    return f"{rng.choice('ABCG')}{rng.randint(1, 4)}.{rng.randint(1, 40):02d}"


def _equipment(world: World, lab: Lab, parent: JSON | None, rng: random.Random) -> JSON:
    eid = EQUIPMENT_ID0 + len(world.equipment)
    cat, sub, stem, maker, model = names.INSTRUMENTS[rng.randrange(len(names.INSTRUMENTS))]
    if parent is not None:
        stem = f"{parent['name']} / {rng.choice(names.CHILD_MODES)}"
        cat, sub = parent["category"]["name"], parent["sub_category"]["name"]
        maker, model = parent["manufacturer"], parent["model"]
    else:
        stem = f"{stem} {eid - EQUIPMENT_ID0 + 1}"
    contact = world.users[lab.user_ids[1 % len(lab.user_ids)] - USER_ID0]
    sub_id = SUBCAT_ID0 + [s[1] for s in names.INSTRUMENTS].index(sub)
    item: JSON = {
        "id": eid, "name": stem,
        "room": "" if rng.random() < 0.15 else _room(rng),
        "manufacturer": maker, "model": model, "city": lab.city, "country": lab.country,
        "currency": lab.currency,
        "charging_type": "Per Day" if rng.random() < 0.15 else "Per Hour",
        "description": None if rng.random() < 0.2 else f"{maker} {model} in {lab.account['name']}",
        "availability_status": rng.choice(names.AVAILABILITY),
        "category": {"name": cat}, "sub_category": {"id": sub_id, "name": sub},
        "contact_person": ref(contact), "lab": ref(lab.account),
        "parent_id": parent["id"] if parent else None,
        "parent_name": parent["name"] if parent else None,
        "manufacturing_year": None if rng.random() < 0.1 else str(rng.randint(2008, 2025)),
        "serial_number": f"{maker[:2].upper()}-{rng.randrange(10**6):06d}",
    }
    world.equipment.append(item)
    world.equipment_lab.append(lab.index)
    lab.equipment_ids.append(eid)
    return item


def _add_groups(world: World, scale: Scale, rng: random.Random) -> None:
    for lab in world.labs:
        for g in range(scale.groups_per_lab):
            gid = GROUP_ID0 + len(world.groups)
            owner = world.users[lab.user_ids[g % len(lab.user_ids)] - USER_ID0]
            suffix = names.GROUP_SUFFIXES[g % len(names.GROUP_SUFFIXES)]
            members = [e for e in lab.equipment_ids if rng.random() < 0.6]
            world.groups.append({
                "id": gid, "name": f"{owner['last_name']} {suffix}",
                "equipment": [ref(world.equipment[e - EQUIPMENT_ID0]) for e in members],
            })
            world.group_account[gid] = lab.account["id"]
            lab.group_ids.append(gid)
        for k, uid in enumerate(lab.user_ids):
            if lab.group_ids:
                gid = lab.group_ids[k % len(lab.group_ids)]
                world.user_group_name[uid] = world.groups[gid - GROUP_ID0]["name"]


def _add_projects(world: World, scale: Scale, rng: random.Random) -> None:
    pid = 701
    fid = 9001
    for lab in world.labs:
        items: list[JSON] = []
        for _ in range(scale.projects_per_lab):
            codes: list[JSON] = []
            for _ in range(rng.randint(0, 3)):
                bare = rng.random() < 0.25  # some codes carry nothing but the code itself
                year = rng.randint(2025, 2029)
                codes.append({
                    "id": fid, "code": f"{rng.choice(names.FUNDERS)}/{rng.randrange(10**5):05d}/1",
                    "description": None if bare else rng.choice(names.PROJECT_TOPICS),
                    "amount": None if bare else f"{rng.randint(5, 500) * 1000}.00",
                    "expiry_date": None if bare else f"{year}-{rng.choice(('03-31', '12-31'))}",
                })
                fid += 1
            picked = rng.sample(lab.user_ids, min(len(lab.user_ids), rng.randint(0, 4)))
            users = [world.users[u - USER_ID0] for u in sorted(picked)]
            items.append({
                "id": pid,
                "name": f"Project {pid}" if pid % 2 else rng.choice(names.PROJECT_TOPICS),
                "supervisor": rng.choice(names.FIRST_NAMES) if rng.random() < 0.5
                else (users[0]["name"] if users else None),
                "additional_information": None if rng.random() < 0.5 else "Ethics ref. 2024/17",
                "funding_codes": codes,
                "selected_users": [{"id": u["id"], "name": u["name"],
                                    "email": None if u["id"] % 7 == 0 else u["email"]}
                                   for u in users],
            })
            pid += 1
        world.projects[lab.account["id"]] = items


def build_world(scale: Scale, seed: int) -> World:
    rng = random.Random(f"calira-sandbox-world-{seed}")
    world = World()
    _add_labs(world, scale)
    _add_users(world, scale, rng)
    _add_equipment(world, scale, rng)
    _add_groups(world, scale, rng)
    _add_projects(world, scale, rng)
    return world
