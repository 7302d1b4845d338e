"""Pull-side methods of ``PrivateRegistry`` (task decorator, pod templates, cluster objects).

Kept in its own module so the pull path grows without touching the declaration itself.
"""

from __future__ import annotations


class PullSide:
    """Mixed into ``PrivateRegistry``; methods here read ``self.pull_secret`` and friends."""
