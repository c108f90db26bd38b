"""Feature modules and the hooks they register into.

A feature (KPI history, reminders, ...) registers its event handlers,
periodic jobs and install steps when its module is imported. The web app,
the worker and the CLI call ``load_features()`` once at start-up, so all
three see the same hooks.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Modules imported by load_features(); each registers its hooks on import.
FEATURE_MODULES: list[str] = ["b24app.kpi.feature", "b24app.reminders.feature"]

EventHandler = Callable[..., str]
InstallStep = Callable[..., None]

_event_handlers: dict[str, list[EventHandler]] = defaultdict(list)
_install_steps: list[InstallStep] = []
_jobs: list[JobSpec] = []
_loaded = False


@dataclass(frozen=True)
class JobSpec:
    """A periodic job run by the worker: ``func(services)`` every ``seconds``.

    ``setting`` names a config key that overrides ``seconds`` when present.
    """

    id: str
    func: Callable[[Any], object]
    seconds: float
    setting: str | None = None


def on_event(name: str) -> Callable[[EventHandler], EventHandler]:
    """Register ``func(services, client, portal, bitrix_id, event) -> outcome``."""

    def register(func: EventHandler) -> EventHandler:
        _event_handlers[name.upper()].append(func)
        return func

    return register


def install_step(func: InstallStep) -> InstallStep:
    """Register ``func(services, portal, client)`` to run at the end of binding."""
    _install_steps.append(func)
    return func


def periodic(job: JobSpec) -> JobSpec:
    _jobs.append(job)
    return job


def event_handlers(name: str) -> list[EventHandler]:
    return list(_event_handlers.get(name.upper(), ()))


def install_steps() -> list[InstallStep]:
    return list(_install_steps)


def jobs() -> list[JobSpec]:
    return list(_jobs)


def load_features() -> None:
    """Import every feature module once per process."""
    global _loaded
    if _loaded:
        return
    for module in FEATURE_MODULES:
        importlib.import_module(module)
    _loaded = True
