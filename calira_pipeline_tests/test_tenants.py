"""The tenant registry: valid files load; a bad file gets one sentence naming entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from calira_pipeline.api.tenants import TenantRegistryError, load_registry

GOOD = """\
tenants:
  - key: uni-a
    base_url: https://api.clustermarket.com/v1
    auth: client_credentials
    secrets: {client_id: CALIRA_UNI_A_CLIENT_ID, client_secret: CALIRA_UNI_A_CLIENT_SECRET}
  - key: lab_b
    base_url: http://127.0.0.1:8123/v1
    auth: access_token
    secrets: {access_token: CALIRA_LAB_B_TOKEN}
    max_rps: 20
    scopes: read_bookings read_equipment
  - key: c3
    base_url: https://api.example.org/v1
    auth: refresh_token
    token_url: https://app.example.org/oauth/token
    secrets:
      client_id: C3_ID
      client_secret: C3_SECRET
      refresh_token: C3_REFRESH
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_loads_every_entry_in_order(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD))
    assert registry.keys == ["uni-a", "lab_b", "c3"]
    lab_b = registry.get("lab_b")
    assert lab_b.auth == "access_token"
    assert dict(lab_b.secret_variables) == {"access_token": "CALIRA_LAB_B_TOKEN"}
    assert lab_b.max_rps == 20.0
    assert lab_b.scopes == "read_bookings read_equipment"
    c3 = registry.get("c3")
    assert c3.token_url == "https://app.example.org/oauth/token"
    assert set(c3.secret_variables) == {"client_id", "client_secret", "refresh_token"}


def test_an_unknown_tenant_is_named_with_the_known_ones(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD))
    with pytest.raises(TenantRegistryError, match=r"'zzz' is not in .*known: uni-a, lab_b, c3"):
        registry.get("zzz")


ENTRY = "  - key: {key}\n    base_url: {url}\n    auth: {auth}\n    secrets: {secrets}\n"


def entry(
    key: str = "uni-a",
    url: str = "https://api.example.org/v1",
    auth: str = "access_token",
    secrets: str = "{access_token: CALIRA_T}",
) -> str:
    return ENTRY.format(key=key, url=url, auth=auth, secrets=secrets)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (entry(key="Uni A"), r"entry 1 \('Uni A'\), field 'key' must be 1-63 lower-case"),
        (entry(url="ftp://x/v1"), r"entry 1 \('uni-a'\), field 'base_url' must be an http"),
        (entry(url="https://u:p@x/v1"), r"field 'base_url' .*without a user name or password"),
        (entry(auth="oauth"), r"field 'auth' must be one of client_credentials, refresh_token"),
        (entry(secrets="CALIRA_T"), r"field 'secrets' must map each secret"),
        (entry(secrets="{access_token: s3cr3t-value}"), r"field 'secrets.access_token' must be"),
        (entry(secrets="{password: CALIRA_T}"), r"field 'secrets.password' is not one of"),
        (
            entry(auth="client_credentials", secrets="{client_id: CALIRA_ID}"),
            r"field 'secrets.client_secret' is missing: auth mode client_credentials needs",
        ),
        (
            entry(secrets="{access_token: CALIRA_T, client_id: CALIRA_ID}"),
            r"field 'secrets.client_id' is not used by auth mode access_token",
        ),
        (entry() + "    colour: blue\n", r"field 'colour' is not known"),
        (entry() + "    max_rps: -1\n", r"field 'max_rps' must be a number above 0"),
        (entry() + entry(), r"entry 2 \('uni-a'\), field 'key' is used by an earlier entry"),
        (entry() + "  - just a string\n", r"entry 2, field 'key' is missing"),
    ],
)
def test_each_bad_entry_gets_one_sentence_naming_entry_and_field(
    tmp_path: Path, body: str, message: str
) -> None:
    path = write(tmp_path, "tenants:\n" + body)
    with pytest.raises(TenantRegistryError, match=message) as raised:
        load_registry(path)
    text = str(raised.value)
    assert text.startswith(str(path.resolve()))
    assert text.replace("e.g. ", "").count(". ") == 0 and "\n" not in text  # one sentence
    assert "s3cr3t-value" not in text  # a pasted secret is never echoed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants: [\n", r"is not valid YAML at line \d"),
        ("tenants: []\n", r"needs a top-level 'tenants:' list with at least one entry"),
        ("- key: a\n", r"needs a top-level 'tenants:' list"),
    ],
)
def test_a_bad_file_says_what_is_wrong_with_it(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TenantRegistryError, match=message):
        load_registry(write(tmp_path, text))


def test_a_missing_file_names_the_variable(tmp_path: Path) -> None:
    missing = r"^CALIRA_TENANTS_FILE='.*nope.yaml' cannot be read"
    with pytest.raises(TenantRegistryError, match=missing):
        load_registry(tmp_path / "nope.yaml")


def test_the_token_store_defaults_to_the_worker_file_and_accepts_a_shared_postgres(
    tmp_path: Path,
) -> None:
    assert load_registry(write(tmp_path, GOOD)).token_store == "file"
    for value in ("dagster_instance", "postgresql://calira@db.internal:5432/dagster"):
        text = f"token_store: {value}\n{GOOD}"
        assert load_registry(write(tmp_path, text)).token_store == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("postgresql://calira:s3cr3t-value@db/dagster", "holds a Postgres password"),
        ("postgresql://calira@db/dagster?password=s3cr3t-value", "holds a Postgres password"),
        ("redis://db/0", "must be file, dagster_instance or a postgresql://"),
        ("[a, b]", "must be file, dagster_instance or a postgresql://"),
    ],
)
def test_a_bad_token_store_is_one_sentence_that_never_echoes_a_password(
    tmp_path: Path, value: str, message: str
) -> None:
    with pytest.raises(TenantRegistryError, match=message) as raised:
        load_registry(write(tmp_path, f"token_store: {value}\n{GOOD}"))
    assert "s3cr3t-value" not in str(raised.value) and "'token_store'" in str(raised.value)
