"""Loads the integration test harness (tests/integration/harness.py: the
installed-Petrel environment, instances, clients and their fixtures) for
every folder pytest.ini collects, so a module's tests in modules/<m>/tests
share it with tests/integration. Put nothing else here."""

pytest_plugins = ["harness"]
