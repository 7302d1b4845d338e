"""The push half: getting a private ImageSpec image built and into its registry.

- ``_builder``: the ImageSpec builder that wraps whichever builder would run (priority 100);
- ``_build_env``: the temporary ``DOCKER_CONFIG`` a build runs with (the user's is never touched);
- ``helper``: the ``docker-credential-flyte-private-registry`` program docker calls for credentials;
- ``_docker_routes``: ``configure-docker``/``login``, routing hosts in the user's docker config;
- ``_docker_cli_builder``: ``docker-cli``, a builder for machines without buildx.

Imports only the core. Nothing here is imported by ``import flyte_private_registry``; the
``flytekit.plugins`` entry point imports the two builders.
"""
