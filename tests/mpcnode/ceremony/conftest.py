"""One cluster directory made by ``init_cluster`` for the whole session (made once: it
generates keys and certificates), and a private copy per test that may damage it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mpcnode.ceremony.cluster_init import ClusterLayout, init_cluster

N, T = 3, 2


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> ClusterLayout:
    return init_cluster(tmp_path_factory.mktemp("ceremony") / "cluster", N, T,
                        cluster_name="test-cluster")


@pytest.fixture
def cluster(made: ClusterLayout, tmp_path: Path) -> Path:
    """A private copy of the session's cluster that a test may damage."""
    dst = tmp_path / "c"
    shutil.copytree(made.root, dst)
    return dst


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in the file by ``new``; ``old`` must be there."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
