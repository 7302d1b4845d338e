"""Example Flyte workflows for the pull path, packaged by tests/test_tasks_pyflyte.py with ``pyflyte``."""
