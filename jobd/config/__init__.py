"""Load, validate and build the configuration model (owned by the config work)."""
