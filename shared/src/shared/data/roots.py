"""The base pattern for loaders of real datasets: check a root folder against its official layout."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def require_root(root: str | Path | None, required: Iterable[str], *, dataset: str, layout: str) -> Path:
    """Check that ``root`` exists and holds every relative path in ``required`` (globs allowed).

    Args:
        root: the ``--data-root`` the user gave.
        required: paths relative to ``root`` that must exist; a pattern with ``*`` must match at least once.
        dataset: the dataset's name, for the message.
        layout: the official layout, as a short indented tree, for the message.

    Returns:
        ``root`` as a resolved :class:`Path`.

    Raises:
        FileNotFoundError: naming the dataset, the path and the expected layout. Never falls back to
            synthetic data.
    """
    hint = f"\nExpected layout of {dataset}:\n{layout.rstrip()}"
    if root is None:
        raise FileNotFoundError(f"{dataset}: no data root given (pass --data-root PATH).{hint}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: data root '{path}' does not exist or is not a folder.{hint}")
    missing = [rel for rel in required if not (any(path.glob(rel)) if "*" in rel else (path / rel).exists())]
    if missing:
        raise FileNotFoundError(f"{dataset}: data root '{path}' is missing {missing}.{hint}")
    return path.resolve()


class DatasetRoot:
    """Base class for a real dataset in its official folder layout.

    Subclasses set ``name``, ``layout`` (a short tree shown in errors and READMEs) and ``required`` (relative
    paths or globs that must exist), then read files below ``self.root``::

        class CIFAR100Root(DatasetRoot):
            name = "CIFAR-100 (python version)"
            layout = "root/\\n  cifar-100-python/\\n    train\\n    test\\n    meta"
            required = ("cifar-100-python/train", "cifar-100-python/test")
    """

    name: str = "dataset"
    layout: str = ""
    required: tuple[str, ...] = ()

    def __init__(self, root: str | Path | None):
        self.root = require_root(root, self.required, dataset=self.name, layout=self.layout)

    def missing_file(self, relative: str | Path) -> FileNotFoundError:
        """An error for a file the layout promised but that is absent or malformed."""
        return FileNotFoundError(
            f"{self.name}: expected '{self.root / relative}' under data root '{self.root}'.\n"
            f"Expected layout of {self.name}:\n{self.layout.rstrip()}"
        )
