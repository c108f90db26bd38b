"""REST method handlers; importing this package registers all of them."""

from . import batch, bindings, crm, im, system, tasks

__all__ = ["batch", "bindings", "crm", "im", "system", "tasks"]
