"""database.url as jobd shows and checks it: a password never appears in any message,
and what asyncpg would refuse only when connecting is found before."""

from __future__ import annotations

import pytest

from jobd.sql.dsn import describe_url, redact, url_problem

PW = "s3cr3t-pw"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://app:{PW}@db:5432/app",
        f"postgresql+asyncpg://app:{PW}@db/app",
        f"cannot use postgres://u:{PW}@h/db, sorry",
        f"postgresql://app:{PW}/with/slash@db/app",  # an unencoded '/' in the password
        f"postgresql://app:p@{PW}@db/app",  # an unencoded '@' in the password
        f"host=db password={PW} user=app",
        f"host=db password = '{PW} with space' user=app",
        f"postgresql://db/app?user=app&password={PW}&sslmode=require",
        f"sslpassword={PW}",
    ],
)
def test_redact_masks_every_password(text: str) -> None:
    """Whatever the form (URL userinfo, a password containing '/' or '@', key=value
    pairs, quoted values, query parameters), the password is gone and *** stands there."""
    shown = redact(text)
    assert PW not in shown and "***" in shown, shown


def test_redact_leaves_text_without_secrets_alone() -> None:
    """A URL without a password, and plain text, come back unchanged."""
    for text in ("postgresql://db:5432/app", "no url here", "postgresql://app@db/app"):
        assert redact(text) == text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://app:{PW}@db:5432/app", "db:5432/app"),
        (f"postgres://app:{PW}@db", "db"),
        (f"postgresql://app:{PW}@h1:5432,h2:5433/app?sslmode=require", "h1:5432,h2:5433/app"),
        ("postgresql:///app", "localhost (Unix socket)/app"),
        (f"password={PW} host=db", "(database.url is not a postgresql:// URL)"),
        (f"postgresql://app:{PW}@[::1/app", "[::1/app"),
    ],
)
def test_describe_url_names_where_never_the_password(url: str, shown: str) -> None:
    """host:port/database, several hosts included; a non-URL is named as such."""
    assert describe_url(url) == shown


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://db:notaport/app", "port 'notaport'"),
        ("postgresql://db:70000/app", "port '70000'"),
        ("postgresql://[::1/app", "IPv6"),
        ("postgresql://::1:5432/app", "brackets"),
        ("postgresql://[::1]x/app", "[address]:port"),
        ("postgresql://db/app?sslmode=bogus", "sslmode 'bogus'"),
        ("postgresql://db/app?target_session_attrs=any-old", "target_session_attrs"),
        ("postgresql://db/app?port=x", "port 'x'"),
        ("postgresql+asyncpg://db/app", "not a postgres://"),
    ],
)
def test_url_problem_finds_what_the_driver_refuses(url: str, words: str) -> None:
    """Each URL asyncpg would reject when connecting has a problem naming the part."""
    problem = url_problem(url)
    assert problem is not None and words in problem, problem


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw@db:5432/app",
        "postgres://db/app?sslmode=verify-full&application_name=x",
        "postgresql://[::1]:5432/app",
        "postgresql://h1:5432,h2:5433/app",
        "postgresql:///app?host=/var/run/postgresql",
    ],
)
def test_url_problem_accepts_usable_urls(url: str) -> None:
    """Ports, IPv6 in brackets, several hosts, Unix sockets and known options pass."""
    assert url_problem(url) is None
