"""The base of every response body that shows one store record (an event, a user, a payment).

Why a base: the store hands out a dataclass whose fields already carry the columns' names
(:func:`chat.store.pg.pool.from_record`), and a response body shows a subset of them under the
same names, so ``model_validate(record)`` reads them by attribute and no response writes its
own field-by-field copy.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RecordOut(BaseModel):
    """A response body built from a store record with ``model_validate``."""

    model_config = ConfigDict(from_attributes=True)
