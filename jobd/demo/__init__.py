"""The demo behind `jobd demo` (and `python3 dev.py run`): the example configuration's
tables with seed rows, a local HTTP sink for its webhooks, and its Python entrypoints.
For trying jobd out on the embedded database; nothing here is used in production."""
