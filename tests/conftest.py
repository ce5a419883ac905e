"""Shared pytest configuration."""


def pytest_configure(config):
    # Tests that reach PyPI or other public servers; deselect offline with -m "not network".
    config.addinivalue_line("markers", "network: needs internet access (PyPI)")
