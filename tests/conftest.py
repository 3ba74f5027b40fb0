"""Shared test settings."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "loopback: talks HTTP to a server on 127.0.0.1 (never the network)")
