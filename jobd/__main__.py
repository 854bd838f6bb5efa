"""`python -m jobd` runs the same CLI as the `jobd` console script."""

from jobd.cli import entry

raise SystemExit(entry())
