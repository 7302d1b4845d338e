"""README's first command runs this demo; keep it true by running it here too."""

import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("flyte-private-registry"))


def test_demo_end_to_end(docker_engine, tmp_path):
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [CLI, "demo", "--workdir", str(workdir)], env=docker_engine.env(), capture_output=True, text=True, timeout=600
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in (
        "it really is private",
        "through the library's credential helper",
        "Verified",
        "the private task references its pull secret; the public one has none",
        "without credentials: pull refused",
        "with the Secret: pulled",
        "ran it: pulled from a private registry with only the pull Secret",
    ):
        assert expected in output
    objects = workdir / "cluster-objects.yaml"
    assert stat.S_IMODE(objects.stat().st_mode) == 0o600
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
