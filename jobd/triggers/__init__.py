"""Triggers: the `where` language, the scheduler scan, the worker and scheduled actions."""
