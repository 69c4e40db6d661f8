"""The live_server fixture is in tests/conftest.py."""
