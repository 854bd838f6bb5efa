"""jobd: a standalone job daemon for Postgres.

The public names for action entrypoints and applications live here; everything else is
internal and may change.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jobd")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
