"""Where the migration files (``sql/``, ``cql/``) are, in a checkout and in an installed wheel.

In the repository they live at the top level, next to ``chat/``; ``chat/schema/sql`` and
``chat/schema/cql`` are symlinks to them, so setuptools copies the files into the wheel as
package data (``chat/schema/...``) and an installed, non-editable package (the Docker image)
finds them through :mod:`importlib.resources`. Without the symlinks (a checkout on a system
that does not support them) the top-level directories are used directly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def schema_dir(name: str) -> Path:
    """The directory of the ``name`` migrations (``"sql"`` or ``"cql"``)."""
    packaged = Path(str(resources.files("chat") / "schema" / name))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / name
