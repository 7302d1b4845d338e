"""``flytekit.plugins`` entry point: ``import flytekit`` imports this. Register builders, nothing more."""

from flytekit.image_spec.image_spec import ImageBuildEngine

from .push import _builder, _docker_cli_builder

ImageBuildEngine.register(_builder.BUILDER_NAME, _builder.PrivateRegistryBuilder(), priority=_builder.PRIORITY)
ImageBuildEngine.register(
    _docker_cli_builder.BUILDER_NAME,
    _docker_cli_builder.DockerCLIBuilder(),
    priority=_docker_cli_builder.PRIORITY,
)
