"""The demo's workflow: one task on a private image, one on flytekit's default public image.

The demo copies this file into its work directory and runs `pyflyte package` on it; the
registry, user and password come from env vars the demo sets (the password never in a file).
"""

import os

from flytekit import ImageSpec, task, workflow

from flyte_private_registry import PrivateRegistry

registry = PrivateRegistry(
    os.environ.get("DEMO_REGISTRY", "localhost:5000/demo"),
    username_env="DEMO_REGISTRY_USER",
    password_env="DEMO_REGISTRY_PASSWORD",
    pull_secret="demo-registry-pull",
)

if os.environ.get("DEMO_BUILDER") == "default":
    # flytekit's own builder: python base image, uv, buildx; needs the internet
    image = ImageSpec(name="greeter", registry=registry.registry)
else:
    # the offline docker-cli builder: a private busybox base pushed by the demo (or scratch)
    image = ImageSpec(
        name="greeter",
        registry=registry.registry,
        base_image=os.environ.get("DEMO_BASE_IMAGE") or None,
        commands=["echo 'pulled from a private registry with only the pull Secret' > /greeting.txt"]
        if os.environ.get("DEMO_BASE_IMAGE")
        else None,
        copy=["demo_workflow.py"],
    )


@registry.task(container_image=image)
def greet(name: str) -> str:
    return f"Hello, {name}, from a private image!"


@task
def shout(text: str) -> str:
    return text.upper()


@workflow
def hello(name: str = "Flyte") -> str:
    return shout(text=greet(name=name))
