"""``flytekit.plugins`` entry point: ``import flytekit`` imports this. Register builders, and in a
``pyflyte`` command that builds images, start reaching the configured registries (``push/_warm_up.py``)."""

from flytekit.image_spec.image_spec import ImageBuildEngine

from .push import _builder, _docker_cli_builder, _warm_up

ImageBuildEngine.register(_builder.BUILDER_NAME, _builder.PrivateRegistryBuilder(), priority=_builder.PRIORITY)
ImageBuildEngine.register(
    _docker_cli_builder.BUILDER_NAME,
    _docker_cli_builder.DockerCLIBuilder(),
    priority=_docker_cli_builder.PRIORITY,
)
_warm_up.start()
