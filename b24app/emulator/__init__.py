"""Bitrix24 cloud portal emulator with its OAuth server, for demos and tests.

It speaks the portal's wire formats: `/rest/` calls with the documented
envelope and errors, the token endpoint, form-encoded event delivery and the
iframe POSTs of the install wizard and placements. `Portal` contains the
state, and its helpers act like people on the portal (a client writes, a
manager calls back, a robot moves a stage).
"""

from .app import create_emulator
from .config import EmulatorConfig
from .state import Portal

__all__ = ["EmulatorConfig", "Portal", "create_emulator"]
