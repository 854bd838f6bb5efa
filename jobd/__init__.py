"""jobd: a standalone job daemon for Postgres.

The public names for action entrypoints and applications live here; everything else is
internal and may change. They are imported on first use, so `import jobd` (and
`jobd --version`) stays fast.
"""

from __future__ import annotations

# No runtime import at all (not even typing): `python -m jobd` imports this package before
# the CLI can catch a Ctrl-C (jobd.cli.entry), so it must take no time.
TYPE_CHECKING = False

DISTRIBUTION = "pgjobd"  # the name on the package index; the import package is `jobd`

if TYPE_CHECKING:
    from typing import Any

    from jobd.actions.base import ActionContext
    from jobd.client import Client
    from jobd.outcomes import Cancel, Discard, Snooze

__all__ = ["ActionContext", "Cancel", "Client", "Discard", "Snooze", "__version__"]

_LAZY = {
    "Client": "jobd.client",
    "ActionContext": "jobd.actions.base",
    "Cancel": "jobd.outcomes",
    "Discard": "jobd.outcomes",
    "Snooze": "jobd.outcomes",
}


def _version() -> str:
    # Looked up on first use: importlib.metadata alone takes a noticeable part of `import
    # jobd`, which runs before the CLI can catch a Ctrl-C (jobd.cli.entry).
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()["__version__"] = _version()
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jobd' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
