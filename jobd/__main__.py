"""`python -m jobd` runs the same CLI as the `jobd` console script."""

from jobd.cli.main import main

raise SystemExit(main())
