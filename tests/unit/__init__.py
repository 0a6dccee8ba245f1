"""Unit tier: tiny cfg-built and planted models, seconds each (see tests/conftest.py)."""
