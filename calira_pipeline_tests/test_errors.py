"""safe_excerpt: secrets are redacted before a body is cut for a message, never after."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from calira_pipeline.api.errors import safe_excerpt
from calira_pipeline.api.http import body_excerpt

SECRET = "S3CRET-calira-client-secret-7f3a9c0d"


def substrings(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def assert_no_part_of(secret: str, text: str) -> None:
    leaked = [part for part in substrings(secret) if part in text]
    assert not leaked, f"{leaked[0]!r} of the secret is in {text!r}"


@pytest.mark.parametrize("offset", range(150, 215, 3))
def test_a_secret_straddling_the_cut_is_redacted_whole(offset: int) -> None:
    body = ("x" * offset + SECRET + " and more text").encode()
    excerpt = safe_excerpt(body, [SECRET], limit=200)
    assert_no_part_of(SECRET, excerpt)
    assert len(excerpt) <= 201 and excerpt.startswith("x" * min(offset, 200))


def test_token_endpoint_echoing_the_secret_past_200_characters() -> None:
    # The case from issue 17: the secret echoed just past the 200-character cut.
    padding = "Client authentication failed due to unknown client " * 4
    response = httpx.Response(
        401,
        json={"error": "invalid_client", "error_description": padding[:170] + SECRET},
    )
    assert_no_part_of(SECRET, body_excerpt(response, [SECRET]))


def test_token_shaped_fields_are_redacted_before_the_cut_even_when_unknown() -> None:
    unknown = "eyJhbGciOiJIUzI1NiJ9.payload.signature-0123456789"
    body = "p" * 180 + f'{{"access_token": "{unknown}"}}'
    assert_no_part_of(unknown, safe_excerpt(body, (), limit=200))


def test_url_encoded_secrets_are_redacted() -> None:
    secret = "s3cr3t+with/slash=and&amp"
    body = f"grant_type=client_credentials&x=1&echo={quote(secret, safe='')}"
    assert_no_part_of(secret, safe_excerpt(body, [secret]))
    assert_no_part_of(quote(secret, safe=""), safe_excerpt(body, [secret]))


def test_whitespace_collapses_without_pulling_a_cut_secret_into_view() -> None:
    # A huge run of blanks, then a secret cut by the redaction window: blanks collapse to one
    # space, so whatever sits at the end of the window would otherwise reach the excerpt.
    window = 68 * 1024
    for end in range(window - 20, window + 1, 4):
        body = " " * (end - 10) + SECRET
        assert_no_part_of(SECRET, safe_excerpt(body, [SECRET], limit=200))


def test_empty_and_short_bodies() -> None:
    assert safe_excerpt(b"", (), empty="(empty body)") == "(empty body)"
    assert safe_excerpt("  two\n\nlines  ", ()) == "two lines"
    assert safe_excerpt("é" * 300, (), limit=10) == "é" * 10 + "…"
