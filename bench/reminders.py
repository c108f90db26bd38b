"""Reminder dispatch throughput per portal within the REST rate limit.

Starts the emulated portal (standard plan: 2 requests/s, burst 50 unless
set otherwise), the app on loopback and a fake Telegram Bot API, installs
the app, stores N due appointments with consent and sends them with the
dispatcher from several threads, as several workers would. Prints
reminders per second overall and after the burst, and checks that every
appointment got exactly one message. An open-line reminder costs one REST
request (one batch), so it runs at the portal's rate once the burst is
spent; Telegram needs no portal call.

    python bench/reminders.py [--appointments 200] [--channel openline|telegram]
                              [--workers 4] [--rate 2] [--burst 50]
                              [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(args: argparse.Namespace) -> dict:
    from sqlalchemy import func, select

    from b24app import create_app
    from b24app.emulator import EmulatorConfig
    from b24app.emulator import crm as emulator_crm
    from b24app.emulator.events import AUTOMATION
    from b24app.emulator.server import start_emulator
    from b24app.models import Portal
    from b24app.reminders import appointments, config, consent, dispatch
    from b24app.reminders.models import Delivery
    from tests.conftest import ServerThread, free_port
    from tests.reminders.fakes import TELEGRAM_TOKEN, FakeTelegram

    workdir = Path(tempfile.mkdtemp(prefix="otklik-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    emulator = start_emulator(
        EmulatorConfig(rate=args.rate, burst=args.burst, seed=True),
        cert_dir=workdir / "certs",
    )
    telegram = FakeTelegram()
    port = free_port()
    app = create_app(
        {
            "ENV": "test",
            "INSTANCE_PATH": str(workdir / "instance"),
            "DATABASE_URL": database_url,
            "SECRET_KEY": "bench-secret-key",
            "CLIENT_ID": emulator.config.client_id,
            "CLIENT_SECRET": emulator.config.client_secret,
            "OAUTH_URL": emulator.base_url,
            "CA_BUNDLE": str(emulator.ca_path),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PORT": port,
            "RATE_LIMIT": args.rate,
            "RATE_BURST": args.burst,
            "LOG_LEVEL": "WARNING",
        }
    )
    services = app.extensions["otklik"]
    server = ServerThread(app, port=port)
    try:
        # Deals and chats exist before the install, so no events pile up.
        deal_ids = []
        for index in range(args.appointments):
            deal_id = emulator_crm.add_deal(
                emulator.portal,
                {"TITLE": f"Стрижка — Клиент {index}", "CATEGORY_ID": 1},
                AUTOMATION,
            )
            emulator.portal.open_crm_chat("deal", deal_id)
            deal_ids.append(deal_id)
        emulator.portal.install_app(
            handler_url=f"{server.url}/app", install_url=f"{server.url}/install"
        )
        with services.db.session() as session:
            portal = session.scalar(select(Portal))
        config.save(
            services,
            portal.id,
            {
                "quiet_hours": {"start": "00:00", "end": "00:00"},
                "channels": [args.channel],
                "telegram": {
                    "api_url": telegram.url,
                    "token_enc": services.box.encrypt(TELEGRAM_TOKEN),
                },
            },
        )
        with services.db.session() as session:
            portal = session.get(Portal, portal.id)

        starts = datetime.now(UTC) + timedelta(hours=3)
        for index, deal_id in enumerate(deal_ids):
            key = f"deal:{deal_id}"
            if args.channel == "telegram":
                address = str(500000 + index)
                consent.grant(
                    services,
                    portal.id,
                    key,
                    "telegram",
                    source="import",
                    address=address,
                )
            else:
                consent.grant(services, portal.id, key, "openline", source="import")
            appointments.upsert(
                services,
                portal,
                "deal",
                deal_id,
                {"deal_id": deal_id, "starts_at": starts, "status": "booked"},
            )

        marks: list[float] = []
        lock = threading.Lock()

        def work() -> None:
            while True:
                sent = dispatch.dispatch_due(services, limit=5)
                with lock:
                    marks.extend([time.perf_counter()] * sent)
                if not sent and not dispatch.due_jobs(services, datetime.now(UTC), 1):
                    return

        started = time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(args.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        with services.db.session() as session:
            per_appointment = session.execute(
                select(Delivery.appointment_id, func.count())
                .where(Delivery.status == "sent")
                .group_by(Delivery.appointment_id)
            ).all()
        marks.sort()
        after_burst = marks[args.burst :]
        sustained = (
            (len(after_burst) - 1) / (after_burst[-1] - after_burst[0])
            if len(after_burst) > 2
            else None
        )
        return {
            "channel": args.channel,
            "backend": services.db.dialect,
            "appointments": args.appointments,
            "workers": args.workers,
            "rate_limit": f"{args.rate}/s burst {args.burst}",
            "sent": len(marks),
            "seconds": round(elapsed, 2),
            "reminders_per_second": round(len(marks) / elapsed, 2),
            "sustained_per_second": round(sustained, 2) if sustained else None,
            "duplicates": sum(1 for _, count in per_appointment if count > 1),
            "missing": args.appointments - len(per_appointment),
        }
    finally:
        server.stop()
        telegram.stop()
        app.extensions["otklik"].close()
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=200)
    parser.add_argument(
        "--channel", choices=("openline", "telegram"), default="openline"
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--database-url")
    result = run(parser.parse_args())
    for key, value in result.items():
        print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
