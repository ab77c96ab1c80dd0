from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_CALIRA_VARS = [k for k in os.environ if k.startswith("CALIRA_")]


@pytest.fixture(autouse=True)
def _no_ambient_calira_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never pick up a developer's real CALIRA_* settings by accident."""
    for key in _CALIRA_VARS:
        monkeypatch.delenv(key, raising=False)
    yield
