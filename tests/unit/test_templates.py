"""Templates of HTTP actions: checking, rendering, percent-encoding, typed body values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobd.actions.templates import (
    TemplateError,
    check_body,
    check_template,
    render_body,
    render_header,
    render_text,
    render_url,
)

VALUES = {
    "record": {"id": "../admin?x=1", "amount": 12.5, "paid": True, "payload": {"c": "z y"}},
    "primary_key": {"id": 42},
    "actor": {"email": "a+b@example.com"},
    "input": {"period": "day"},
    "tenant": "acme",
    "job": {"id": 1234, "attempt": 2, "inserted_at": datetime(2026, 1, 2, tzinfo=UTC)},
    "resource": "orders",
    "trigger": "process",
    "schedule": None,
}


def test_known_placeholders_pass_the_check() -> None:
    """Every documented placeholder is accepted, and {{ }} escape braces."""
    text = (
        "https://x/{tenant}/{record.id}/{record.payload.c}/{actor.email}/{input.period}"
        "/{job.id}/{job.attempt}/{primary_key.id}/{resource}/{trigger}?q={{raw}}"
    )
    assert check_template(text) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("https://x/{recrd.id}", "unknown placeholder {recrd.id}"),
        ("https://x/{record}", "unknown placeholder {record}"),
        ("https://x/{job.secret}", "unknown placeholder {job.secret}"),
        ("https://x/{record.}", "unknown placeholder {record.}"),
        ("https://x/{tenant", "unbalanced '{'"),
        ("https://x/}", "unbalanced '}'"),
    ],
)
def test_unknown_placeholders_and_stray_braces_are_reported(text: str, fragment: str) -> None:
    """check_template names what is wrong, for `jobd check`."""
    problems = check_template(text)
    assert problems and fragment in problems[0]


def test_url_values_are_percent_encoded_inside_their_segment() -> None:
    """A key of ../admin?x=1 stays inside its path segment; the template text is kept."""
    url = render_url("https://api.example.com/orders/{record.id}/process?by={actor.email}", VALUES)
    assert url == "https://api.example.com/orders/..%2Fadmin%3Fx%3D1/process?by=a%2Bb%40example.com"


def test_text_rendering_spells_values_like_json() -> None:
    """Booleans, numbers, dates and mappings become their JSON-like text."""
    text = render_text("{record.paid} {record.amount} {job.inserted_at} {record.payload}", VALUES)
    assert text == 'true 12.5 2026-01-02T00:00:00+00:00 {"c":"z y"}'


def test_missing_values_and_header_injection_are_errors() -> None:
    """A missing value is a TemplateError naming the placeholder; CR/LF cannot enter a header."""
    with pytest.raises(TemplateError, match=r"\{actor.id\}"):
        render_url("https://x/{actor.id}", VALUES)
    with pytest.raises(TemplateError, match="line break"):
        render_header("{input.period}", {"input": {"period": "a\r\nX-Evil: 1"}}, "X-P")
    assert render_header("Bearer {tenant}", VALUES, "Authorization") == "Bearer acme"


def test_body_templates_keep_types_for_lone_placeholders() -> None:
    """A body string that is one placeholder keeps the JSON type; others interpolate."""
    template = {
        "id": "{primary_key.id}",
        "paid": "{record.paid}",
        "label": "order {primary_key.id}",
        "nested": [{"t": "{tenant}"}, 3],
        "none": "{schedule}",
    }
    assert render_body(template, VALUES) == {
        "id": 42,
        "paid": True,
        "label": "order 42",
        "nested": [{"t": "acme"}, 3],
        "none": None,
    }
    assert check_body({"a": ["{nope}"]}) and check_body(template) == []
