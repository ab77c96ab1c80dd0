"""The Postgres token store's own text: where it points, never the password (no database)."""

from __future__ import annotations

import pytest

from calira_pipeline.api.token_store import TokenStoreError
from calira_pipeline.storage.postgres_tokens import PostgresTokenStore

PASSWORD = "pa55-not-for-logs"


@pytest.mark.parametrize(
    ("dsn", "where"),
    [
        (f"postgresql://calira:{PASSWORD}@db.internal:6543/dagster", "db.internal:6543/dagster"),
        (f"host=10.0.0.5 user=calira password={PASSWORD} dbname=ops", "10.0.0.5:5432/ops"),
        (f"postgresql://calira:{PASSWORD}@db.internal:not-a-port/x", "db.internal:not-a-port/x"),
        (f"host=db password={PASSWORD} dbname", "an unparsable DSN"),
    ],
)
def test_the_store_names_host_port_and_database_but_never_the_password(
    dsn: str, where: str
) -> None:
    store = PostgresTokenStore(dsn, "uni-a")
    shown = [store.describe(), repr(store), store.location()]
    assert store.location() == where
    assert "tenant uni-a" in store.describe() and "calira_refresh_tokens" in store.describe()
    assert not any(PASSWORD in text for text in shown)


def test_each_tenant_has_its_own_stable_lock() -> None:
    dsn = "host=db dbname=dagster"
    keys = {PostgresTokenStore(dsn, tenant).lock_key() for tenant in ("a", "b", "uni-a")}
    assert len(keys) == 3
    assert PostgresTokenStore(dsn, "a").lock_key() == PostgresTokenStore("other", "a").lock_key()
    assert all(-(2**63) <= key < 2**63 for key in keys)  # a Postgres bigint


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://calira:{PASSWORD}%zz@127.0.0.1:1/dagster",  # a bad %-escape in it
        f"host=127.0.0.1 port=1 password=ab {PASSWORD}",  # a space in it, unquoted
    ],
)
def test_a_malformed_dsn_is_named_as_such_without_quoting_any_of_it(dsn: str) -> None:
    # libpq's own message quotes the part it could not parse: here, the password.
    with pytest.raises(TokenStoreError) as failed:
        PostgresTokenStore(dsn, "uni-a", connect_timeout_s=1).connect()
    message = str(failed.value)
    assert "tenant uni-a: " in message and "DSN is malformed" in message
    assert PASSWORD not in message and "%zz" not in message
