"""The `jobd` command line (`jobd.cli.main`)."""

from __future__ import annotations

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C'd command


def entry() -> int:
    """The console script and `python -m jobd`: Ctrl-C while the CLI's modules are still
    loading (half a second or more on a busy machine) ends quietly, like Ctrl-C later."""
    try:
        from jobd.cli.main import main
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return main()
