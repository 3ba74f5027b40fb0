"""Shared test settings."""

from __future__ import annotations

import pytest

from lancet.noise import sources


def pytest_configure(config):
    config.addinivalue_line("markers", "loopback: talks HTTP to a server on 127.0.0.1 (never the network)")


@pytest.fixture(autouse=True)
def no_downloaded_noise(monkeypatch):
    """Tests choose their noise explicitly: real noise unpacked into datasets/noise/ on a developer's machine
    must not change what they check (a test that wants that folder points the constant at its own)."""
    monkeypatch.setattr(sources, "DOWNLOADED_NOISE_DIR", None)
