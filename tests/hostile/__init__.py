"""Table-driven hostile input, one table per door (admin API, CLI, `check --db`, SQL
functions): every bad input gets its status or exit code and a clear message, and no
traceback, token or password reaches the output or the logs."""
