"""Run the portal emulator in the foreground.

    python -m b24app.emulator --port 8443 --cert-dir var/emulator --app-url URL

Prints one JSON line (base_url, domain, ca_path, client_id, client_secret,
member_id) for scripts to read, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from .config import EmulatorConfig
from .scenario import AnswerPolicy, ScenarioRunner
from .server import start_emulator

logger = logging.getLogger("b24app.emulator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m b24app.emulator",
        description="Bitrix24 cloud portal and OAuth server emulator on loopback.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks one")
    parser.add_argument(
        "--cert-dir",
        type=Path,
        required=True,
        help="directory for the test CA bundle emulator-ca.pem",
    )

    parser.add_argument("--rate", type=float, help="leaky bucket drain, requests/s")
    parser.add_argument("--burst", type=int, help="leaky bucket size, requests")
    parser.add_argument(
        "--plan", choices=("standard", "enterprise"), default="standard"
    )

    parser.add_argument("--app-url", help="the app's handler URL (main page)")
    parser.add_argument("--install-url", help="the app's installer page URL")
    parser.add_argument("--install-event-url", help="URL that receives ONAPPINSTALL")
    parser.add_argument("--client-id", help="OAuth client_id of the app")
    parser.add_argument("--client-secret", help="OAuth client_secret of the app")
    parser.add_argument("--member-id", help="portal member_id, 32 hex characters")

    parser.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    parser.add_argument("--no-seed", action="store_true", help="start almost empty")

    parser.add_argument(
        "--scenario-rate",
        type=float,
        default=0.0,
        help="create realistic leads at this many per minute (0 = off)",
    )
    parser.add_argument(
        "--sla-seconds",
        type=float,
        default=60.0,
        help="SLA target in seconds; scenario managers reply before or after it",
    )
    parser.add_argument("--seed", type=int, default=42, help="scenario random seed")
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    overrides = {
        "client_id": args.client_id,
        "client_secret": args.client_secret,
        "member_id": args.member_id,
    }
    config = EmulatorConfig(
        plan=args.plan,
        rate=args.rate,
        burst=args.burst,
        seed=not args.no_seed,
        app_handler_url=args.app_url,
        app_install_url=args.install_url,
        app_install_event_url=args.install_event_url,
        **{key: value for key, value in overrides.items() if value},
    )
    handle = start_emulator(
        config, port=args.port, tls=not args.no_tls, cert_dir=args.cert_dir
    )
    runner = None
    if args.scenario_rate > 0:
        policy = AnswerPolicy(sla_seconds=args.sla_seconds)
        runner = ScenarioRunner(
            handle.portal, args.scenario_rate, policy, seed=args.seed
        ).start()

    print(
        json.dumps(
            {
                "base_url": handle.base_url,
                "domain": handle.domain,
                "ca_path": str(handle.ca_path) if handle.ca_path else None,
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "member_id": config.member_id,
            }
        ),
        flush=True,
    )

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()

    if runner is not None:
        runner.stop()
    handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
