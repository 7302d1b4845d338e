"""``flyte-private-registry doctor --pod NAMESPACE/POD``: the installed command, in its own process.

Real parts: the htpasswd registry of the test rig refuses the pod's credential; the command reads
the pod, Secret and Events through the real ``kubernetes`` client from the API stand-in
(tests/kube_stand_in.py, an HTTP server, not a cluster), reached through a kubeconfig.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kube_stand_in import stand_in_api

from flyte_private_registry import PrivateRegistry

CLI = str(Path(sys.executable).with_name("flyte-private-registry"))
NS = "p-dev"


@pytest.mark.integration
def test_doctor_pod_names_the_cause_and_the_fix(basic_registry, canary_password, tmp_path):
    image = basic_registry.reference("team/app", "v1")
    wrong = PrivateRegistry(
        f"{basic_registry.host}/team", username="alice", password="wrong-" + canary_password, pull_secret="team-pull"
    )
    with stand_in_api({NS}) as api:
        wrong.cluster_objects(namespaces=[NS]).apply(api.client())
        api.put(
            NS,
            "pods",
            {
                "metadata": {"name": "train-abc"},
                "spec": {
                    "containers": [{"name": "primary", "image": image}],
                    "imagePullSecrets": [{"name": "team-pull"}],
                },
                "status": {
                    "containerStatuses": [
                        {"name": "primary", "image": image, "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                    ]
                },
            },
        )
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: c, cluster: {{server: '{api.url}'}}}}]\n"
            "users: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
        )
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env["FLYTE_PRIVATE_REGISTRIES"] = json.dumps(
            [{"prefix": f"{basic_registry.host}/team", "pull_secret": "team-pull"}]
        )

        def doctor(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([CLI, "doctor", *args], env=env, capture_output=True, text=True, timeout=120)

        text = doctor("--pod", f"{NS}/train-abc")
        as_json = doctor("--pod", f"{NS}/train-abc", "--json")
        missing = doctor("--pod", f"{NS}/gone")
        malformed = doctor("--pod", "no-slash")
    print(text.stdout)
    assert text.returncode == 1, text.stderr
    assert f"pod {NS}/train-abc" in text.stdout and "cause: refused" in text.stdout
    assert f"registry {basic_registry.host} refused user 'alice'" in text.stdout
    assert "fix: give the registry a working read-only credential" in text.stdout
    (stuck,) = json.loads(as_json.stdout)["images"]
    assert stuck["cause"] == "refused" and stuck["reason"] == "ImagePullBackOff" and as_json.returncode == 1
    assert missing.returncode == 3 and f"pod {NS}/gone does not exist" in missing.stderr
    assert malformed.returncode == 2 and "expected NAMESPACE/POD" in malformed.stderr
    for result in (text, as_json, missing, malformed):
        assert canary_password not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
