"""A module that fails while importing (for the entrypoint error test)."""

raise RuntimeError("this module is broken on purpose")
