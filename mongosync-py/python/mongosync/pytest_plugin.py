"""The pytest plugin of mongosync (registered through the ``pytest11`` entry point, so it is
active once ``mongosync`` is installed).

Fixtures:

``memory_cluster``
    A fresh in-memory replica set per test, with authentication on (user ``admin``, a random
    password): connect with ``memory_cluster.uri_with_credentials()``.

``memory_cluster_factory``
    A function that starts more clusters (same keyword arguments as
    :class:`mongosync.testing.MemoryCluster`); each stops when the test ends.
"""

from __future__ import annotations

import secrets
from typing import Any, Iterator, List

import pytest

from .testing import MemoryCluster

__all__ = ["memory_cluster", "memory_cluster_factory", "MemoryClusterFactory"]


class MemoryClusterFactory:
    """Starts in-memory clusters for one test and stops them all at its end."""

    def __init__(self) -> None:
        self._clusters: List[MemoryCluster] = []

    def __call__(self, **options: Any) -> MemoryCluster:
        """A started cluster; ``auth=True`` (the default) turns authentication on with user
        ``admin`` and a random password unless ``user``/``password`` are given."""
        if options.pop("auth", True) and "user" not in options:
            options["user"] = "admin"
            options.setdefault("password", secrets.token_urlsafe(12))
        cluster = MemoryCluster(**options)
        self._clusters.append(cluster)
        return cluster

    def stop_all(self) -> None:
        """Stops every cluster started by this factory."""
        for c in self._clusters:
            c.stop()
        self._clusters.clear()


@pytest.fixture
def memory_cluster_factory() -> Iterator[MemoryClusterFactory]:
    """Starts in-memory replica sets on demand; they stop when the test ends."""
    factory = MemoryClusterFactory()
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def memory_cluster(memory_cluster_factory: MemoryClusterFactory) -> MemoryCluster:
    """An in-memory replica set with authentication on (user ``admin``)."""
    return memory_cluster_factory()
