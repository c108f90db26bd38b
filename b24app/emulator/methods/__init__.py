"""REST method handlers; importing this package registers all of them."""

from . import (
    batch,
    bindings,
    booking,
    crm,
    currency,
    im,
    imbot,
    openlines,
    system,
    tasks,
)

__all__ = [
    "batch",
    "bindings",
    "booking",
    "crm",
    "currency",
    "im",
    "imbot",
    "openlines",
    "system",
    "tasks",
]
