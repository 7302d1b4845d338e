"""Example Flyte workflows for the pull path, packaged by tests/pull/test_tasks_pyflyte.py with ``pyflyte``."""
