"""Fixtures shared by the test modules (each defined in tests/datafiles.py)."""

from tests.datafiles import server  # noqa: F401 (a fixture: the local HTTP server)
