"""The pull half: making the cluster able to pull private images.

- ``_tasks``: ``@reg.task``, ``reg.attach``, pod templates carrying ``imagePullSecrets``;
- ``_objects``: the Secret per ``<project>-<domain>`` namespace, the service-account patch, the
  default PodTemplate; ``_apply`` writes them; ``_refresher`` keeps short-lived tokens fresh;
- ``_preflight`` with ``_kubelet``: can a namespace pull an image, by the kubelet's own rules;
- ``_dockerconfigjson``: the Secret payload; ``_k8s_import``: ``kubernetes``, imported late.

Imports only the core; the declaration's pull-side methods hand off here lazily.
"""
