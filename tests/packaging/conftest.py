"""Packaging tests. The fast ones check the recipes and the frozen entry point without
building anything; the frozen-build smoke test is marked ``installer`` (and ``slow``) and
runs only on demand: ``pytest -m installer tests/packaging``."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "installer: builds/uses the frozen Linux bundle (minutes); run with -m installer",
    )
