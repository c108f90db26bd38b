"""Realistic incoming leads for the demo, and managers who reply to some of them.

`next_lead(rng)` makes one lead of a beauty salon, a clinic or a fitness
club: booking requests, price questions, reschedules, complaints, urgent
cases and spam, written the way clients write (typos, emoji, no capitals,
form dumps). `ScenarioRunner` creates leads over time. Managers reply to a
share of them on time, to a share late (after the SLA target) and never to
the rest, so the app has escalations to raise. Both are deterministic for a
given seed.

`AppointmentRunner` books visits and plays the people around them: clients
who answer the app's reminders in the open-line chat (confirm, cancel, ask
to move, or stay silent) and managers who mark each visit as visited or
no-show after its time.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

FEMALE_NAMES = (
    "Мария",
    "Анастасия",
    "Екатерина",
    "Светлана",
    "Ольга",
    "Юлия",
    "Дарья",
    "Алина",
    "Полина",
    "Виктория",
    "Наталья",
    "Ксения",
    "Елена",
    "Татьяна",
)
MALE_NAMES = (
    "Алексей",
    "Дмитрий",
    "Игорь",
    "Сергей",
    "Артём",
    "Павел",
    "Никита",
    "Роман",
    "Кирилл",
    "Виктор",
)
LAST_NAMES = (
    ("Кузнецова", "Кузнецов"),
    ("Попова", "Попов"),
    ("Васильева", "Васильев"),
    ("Новикова", "Новиков"),
    ("Фёдорова", "Фёдоров"),
    ("Волкова", "Волков"),
    ("Егорова", "Егоров"),
    ("Захарова", "Захаров"),
    ("Никитина", "Никитин"),
    ("Гусева", "Гусев"),
)

SERVICES = {
    "salon": (
        "стрижку",
        "окрашивание",
        "маникюр",
        "педикюр",
        "ламинирование ресниц",
        "коррекцию бровей",
        "укладку на выпускной",
        "кератиновое выпрямление",
        "чистку лица",
    ),
    "clinic": (
        "консультацию стоматолога",
        "профессиональную чистку зубов",
        "приём терапевта",
        "УЗИ брюшной полости",
        "осмотр гинеколога",
        "консультацию дерматолога",
        "сдачу анализов",
        "лечение кариеса",
    ),
    "fitness": (
        "пробную тренировку",
        "персональную тренировку",
        "групповое занятие по йоге",
        "абонемент на месяц",
        "пилатес",
        "занятие в бассейне",
        "растяжку",
        "консультацию тренера",
    ),
}

TIMES = (
    "завтра в 15",
    "завтра после 18:00",
    "сегодня вечером",
    "в субботу утром",
    "в эту пятницу к 11",
    "послезавтра в 10:30",
    "на следующей неделе, лучше вторник",
    "в любой день после обеда",
    "в воскресенье часа в 2",
    "25-го числа в первой половине дня",
    "как можно раньше",
    "в четверг в 19.00",
)

BOOKING_TEMPLATES = (
    "Здравствуйте! Хочу записаться на {service} {time}. Есть свободное время?",
    "добрый день, можно записаться на {service} {time}",
    "Запишите меня пожалуйста на {service}, удобно {time}",
    "Подскажите, есть окошко на {service} {time}?",
    "Хочу к вам на {service}. {time_cap} получится?",
    "Здравствуйте, меня зовут {name}. Интересует {service}, {time}",
    "привет) на {service} {time} есть места?",
    "Можно ли попасть на {service} {time}? Спасибо",
)
PRICE_TEMPLATES = (
    "Сколько стоит {service}?",
    "Здравствуйте, подскажите цену на {service} и сколько по времени длится",
    "А есть скидки на {service}? Первый раз к вам",
    "скиньте прайс на {service} пожалуйста",
    "Добрый вечер. Почём у вас {service}? И нужна ли предоплата?",
)
RESCHEDULE_TEMPLATES = (
    "Я записана на {service} {time}, но не успеваю. Можно перенести?",
    "Здравствуйте, нужно отменить запись на {service}, заболела",
    "Перенесите пожалуйста мою запись, мне удобно {time}",
    "Добрый день! Можно сдвинуть время на {service}? Мне удобнее {time}",
)
COMPLAINT_TEMPLATES = (
    "Была у вас вчера на {service}, результатом недовольна. Кто может связаться?",
    "Очень долго ждала администратора, хотя была записана. Разберитесь пожалуйста",
    "Мне так и не перезвонили по поводу записи на {service}!!",
    "Оплатила {service}, а чек на почту не пришёл",
)
URGENT_TEMPLATES = {
    "salon": (
        "СРОЧНО нужна укладка сегодня, через 2 часа свадьба подруги!!!",
        "Сломался ноготь, можно сегодня срочно исправить?",
    ),
    "clinic": (
        "Очень болит зуб, щека опухла. Можно сегодня попасть?",
        "У ребёнка температура 39, нужен врач сегодня, срочно",
        "срочно! выпала пломба, больно есть",
    ),
    "fitness": (
        "Потерял карту клуба, меня не пускают, я на ресепшене. Помогите срочно",
        "Срочно нужно заморозить абонемент, улетаю завтра",
    ),
}
GENERIC_TEMPLATES = (
    "Перезвоните мне",
    "Здравствуйте",
    "Хочу записаться",
    "а вы работаете в праздники?",
    "Где вы находитесь? Есть парковка?",
    "Можно подарочный сертификат?",
)
SPAM_TEMPLATES = (
    "Продвижение сайта в ТОП-10 Яндекса за 7 дней! Гарантия результата",
    "Предлагаем базы клиентов вашего города, 50 000 контактов недорого",
    "Заработок на крипте от 100к в месяц, пишите в телеграм",
    "Здравствуйте, мы делаем сайты и чат-боты под ключ. Интересно?",
    "Вы выиграли iPhone! Перейдите по ссылке для получения приза",
)
EMOJI = ("😊", "🙏", "💅", "🦷", "💪", "❤️", "👍", "🔥", "😢", "🤔")
EMAIL_SUBJECTS = {
    "booking": ("Запись", "Хочу записаться", "Запись на приём", "Вопрос по записи"),
    "price": ("Цены", "Стоимость услуг", "Вопрос"),
    "reschedule": ("Перенос записи", "Отмена записи"),
    "complaint": ("Жалоба", "Претензия", "Недовольна обслуживанием"),
    "urgent": ("СРОЧНО", "Срочный вопрос"),
    "generic": ("Вопрос", "Без темы", "Обратная связь"),
    "spam": ("Коммерческое предложение", "Выгодное предложение", "Сотрудничество"),
}

# Weights of the request types and of the channels.
INTENT_WEIGHTS = {
    "booking": 40,
    "price": 18,
    "reschedule": 10,
    "complaint": 7,
    "urgent": 8,
    "generic": 9,
    "spam": 8,
}
KIND_WEIGHTS = {"form": 35, "openline": 30, "title": 15, "email": 20}
UTM_SOURCES = ("yandex", "vk", "google", "2gis", "instagram")


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[name] for name in names], k=1)[0]


def _phone(rng: random.Random) -> str:
    digits = [rng.randint(0, 9) for _ in range(7)]
    operator = rng.choice(("903", "905", "915", "916", "926", "977", "999", "921"))
    body = "".join(map(str, digits))
    style = rng.randrange(3)
    if style == 0:
        return f"+7 {operator} {body[:3]}-{body[3:5]}-{body[5:]}"
    if style == 1:
        return f"8{operator}{body}"
    return f"+7({operator}){body[:3]}{body[3:]}"


def _typo(rng: random.Random, text: str) -> str:
    """Swap two neighbouring letters or drop one, as a hurried typist does."""
    positions = [i for i in range(1, len(text) - 2) if text[i].isalpha()]
    if not positions:
        return text
    index = rng.choice(positions)
    if rng.random() < 0.5 and text[index + 1].isalpha():
        return text[:index] + text[index + 1] + text[index] + text[index + 2 :]
    return text[:index] + text[index + 1 :]


def _roughen(rng: random.Random, text: str) -> str:
    if rng.random() < 0.25:
        text = _typo(rng, text)
    if rng.random() < 0.2:
        text = text.lower().rstrip(".!")
    if rng.random() < 0.25:
        text = f"{text} {rng.choice(EMOJI)}"
    return text


def _message(rng: random.Random, segment: str, intent: str, name: str) -> str:
    service = rng.choice(SERVICES[segment])
    moment = rng.choice(TIMES)
    pools = {
        "booking": BOOKING_TEMPLATES,
        "price": PRICE_TEMPLATES,
        "reschedule": RESCHEDULE_TEMPLATES,
        "complaint": COMPLAINT_TEMPLATES,
        "urgent": URGENT_TEMPLATES[segment],
        "generic": GENERIC_TEMPLATES,
        "spam": SPAM_TEMPLATES,
    }
    template = rng.choice(pools[intent])
    text = template.format(
        service=service,
        time=moment,
        time_cap=moment[:1].upper() + moment[1:],
        name=name,
    )
    return text if intent == "spam" else _roughen(rng, text)


def _form_dump(rng: random.Random, name: str, phone: str, segment: str, text: str):
    """Render a site form the way form builders paste it into COMMENTS."""
    lines = [f"Имя: {name}", f"Телефон: {phone}"]
    if rng.random() < 0.6:
        lines.append(f"Услуга: {rng.choice(SERVICES[segment])}")
    lines.append(f"Комментарий: {text}")
    if rng.random() < 0.3:
        lines.append("Согласие на обработку персональных данных: да")
    return "\n".join(lines)


def next_lead(rng: random.Random) -> tuple[dict[str, Any], str, str]:
    """Make one incoming lead: (fields, kind, message) for `Portal.create_lead`."""
    fields, kind, message, _intent = next_lead_with_intent(rng)
    return fields, kind, message


def next_lead_with_intent(rng: random.Random) -> tuple[dict[str, Any], str, str, str]:
    """Like `next_lead`, also returning the intent the text was written with."""
    segment = rng.choice(tuple(SERVICES))
    intent = _weighted(rng, INTENT_WEIGHTS)
    kind = _weighted(rng, KIND_WEIGHTS)
    female = rng.random() < 0.7
    name = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
    last_name = rng.choice(LAST_NAMES)[0 if female else 1]
    phone = _phone(rng)
    text = _message(rng, segment, intent, name)

    fields: dict[str, Any] = {"NAME": name}
    if rng.random() < 0.5:
        fields["LAST_NAME"] = last_name
    if kind != "openline" or rng.random() < 0.3:
        fields["PHONE"] = [{"VALUE": phone, "VALUE_TYPE": "MOBILE"}]

    if kind == "form":
        if rng.random() < 0.5:
            text = _form_dump(rng, name, phone, segment, text)
        if rng.random() < 0.6:
            fields["UTM_SOURCE"] = rng.choice(UTM_SOURCES)
    elif kind == "openline":
        fields["CONNECTOR"] = rng.choice(("livechat", "telegrambot"))
    elif kind == "email":
        local = f"{name.lower()}{rng.randint(10, 99)}"
        translit = local.translate(_LATIN)
        fields["EMAIL"] = [{"VALUE": f"{translit}@mail.example", "VALUE_TYPE": "WORK"}]
        fields["SUBJECT"] = rng.choice(EMAIL_SUBJECTS[intent])
        if rng.random() < 0.5:
            text = f"{text}\n\n--\nС уважением, {name}\nОтправлено с мобильного"
    return fields, kind, text, intent


_LATIN = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e",
        "ж": "zh", "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m",
        "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u",
        "ф": "f", "х": "h", "ц": "c", "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "",
        "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
    }
)  # fmt: skip

REPLIES = {
    "openline": (
        "Здравствуйте! Да, есть свободное время, записываю вас.",
        "Добрый день! Подскажите, пожалуйста, удобное время, подберём мастера.",
        "Здравствуйте! Стоимость зависит от длины волос, от 1500 ₽. Записать вас?",
    ),
    "email": (
        "Здравствуйте! Спасибо за обращение, записали вас, ждём.",
        "Добрый день! Прайс во вложении, перезвоним для уточнения времени.",
    ),
    "call": (
        "Перезвонили, клиент записан.",
        "Дозвонились, уточнили время визита.",
        "Клиент не взял трубку, отправили SMS.",
    ),
}


@dataclass
class AnswerPolicy:
    """Manager behaviour: shares of on-time and late replies, SLA target in seconds.

    The rest of the leads (1 - on_time_share - late_share) get no reply.
    Spam leads are moved to JUNK at an on-time moment instead.
    """

    on_time_share: float = 0.6
    late_share: float = 0.25
    sla_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.on_time_share < 0 or self.late_share < 0:
            raise ValueError("Reply shares must not be negative.")
        if self.on_time_share + self.late_share > 1:
            raise ValueError("on_time_share + late_share must not exceed 1.")

    def plan(self, rng: random.Random) -> tuple[str, float | None]:
        """Return ("on_time" | "late" | "never", delay in seconds or None)."""
        draw = rng.random()
        if draw < self.on_time_share:
            return "on_time", rng.uniform(0.2, 0.8) * self.sla_seconds
        if draw < self.on_time_share + self.late_share:
            return "late", rng.uniform(1.3, 2.5) * self.sla_seconds
        return "never", None


@dataclass(order=True)
class _PlannedAnswer:
    due: float
    lead_id: int = field(compare=False)
    kind: str = field(compare=False)
    intent: str = field(compare=False)


class ScenarioRunner:
    """Background thread that creates leads at `rate_per_minute`, replying to some."""

    def __init__(
        self,
        portal: Portal,
        rate_per_minute: float = 6.0,
        answer_policy: AnswerPolicy | None = None,
        *,
        seed: int = 42,
        max_leads: int | None = None,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive.")
        self.portal = portal
        self.rate_per_minute = rate_per_minute
        self.policy = answer_policy or AnswerPolicy()
        self.max_leads = max_leads
        self.created: list[int] = []
        self.outcomes: dict[int, str] = {}
        self._rng = random.Random(seed)
        # Replies draw from their own generator, so reply timing cannot
        # change which leads are generated.
        self._reply_rng = random.Random(seed + 1)
        self._pending: list[_PlannedAnswer] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ScenarioRunner:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="emulator-scenario", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def finished(self) -> bool:
        """True when every lead was created and every planned reply was made."""
        limit_reached = (
            self.max_leads is not None and len(self.created) >= self.max_leads
        )
        return limit_reached and not self._pending

    def _run(self) -> None:
        next_arrival = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            while self._pending and self._pending[0].due <= now:
                self._answer(heapq.heappop(self._pending))

            can_create = self.max_leads is None or len(self.created) < self.max_leads
            if can_create and next_arrival <= now:
                self._arrive(now)
                mean_gap = 60.0 / self.rate_per_minute
                next_arrival = now + self._rng.expovariate(1 / mean_gap)
            if self.finished:
                return

            wake_times = [next_arrival] if can_create else []
            if self._pending:
                wake_times.append(self._pending[0].due)
            wait = max(0.0, min(wake_times, default=now + 0.5) - time.monotonic())
            self._stop.wait(min(wait, 0.5))

    def _arrive(self, now: float) -> None:
        fields, kind, message, intent = next_lead_with_intent(self._rng)
        try:
            lead_id = self.portal.create_lead(fields, kind=kind, message=message)
        except Exception:
            logger.exception("scenario could not create a lead")
            return
        self.created.append(lead_id)

        outcome, delay = self.policy.plan(self._rng)
        if intent == "spam":
            outcome = "never" if outcome == "never" else "junk"
            delay = None if outcome == "never" else self.policy.sla_seconds * 0.3
        self.outcomes[lead_id] = outcome
        if delay is not None:
            planned = _PlannedAnswer(now + delay, lead_id, kind, intent)
            heapq.heappush(self._pending, planned)
        logger.info("scenario lead %s (%s) planned reply: %s", lead_id, kind, outcome)

    def _answer(self, planned: _PlannedAnswer) -> None:
        portal = self.portal
        try:
            lead = portal.leads[planned.lead_id]
        except KeyError:
            return
        manager = int(lead["ASSIGNED_BY_ID"])
        try:
            if planned.intent == "spam":
                portal.change_lead_status(planned.lead_id, "JUNK", actor_id=manager)
                return
            if planned.kind == "openline":
                portal.add_activity(
                    planned.lead_id,
                    type_id=6,
                    direction=2,
                    author_id=manager,
                    provider_id="IMOPENLINES_SESSION",
                    description=self._reply_rng.choice(REPLIES["openline"]),
                )
            elif planned.kind == "email":
                portal.add_activity(
                    planned.lead_id,
                    type_id=4,
                    direction=2,
                    author_id=manager,
                    subject="Re: " + str(lead.get("TITLE") or "ваша заявка"),
                    description=self._reply_rng.choice(REPLIES["email"]),
                )
            else:
                portal.add_activity(
                    planned.lead_id,
                    type_id=2,
                    direction=2,
                    author_id=manager,
                    description=self._reply_rng.choice(REPLIES["call"]),
                )
            portal.change_lead_status(planned.lead_id, "IN_PROCESS", actor_id=manager)
        except Exception:
            logger.exception("scenario failed to reply to lead %s", planned.lead_id)


# ---------------------------------------------------------------- appointments

CLIENT_REPLIES = {
    "confirm": ("да, приду", "Да, буду 👍", "подтверждаю"),
    "cancel": ("отмените, не смогу", "Не смогу прийти, отмените пожалуйста"),
    "reschedule": ("можно перенести на завтра?", "А можно перенести на пятницу?"),
}
# The reply of each upcoming visit's client to the confirmation request, in
# booking order (None: no reply). The first four show every kind.
REPLY_PLAN = ("confirm", "cancel", "reschedule", None, "confirm", None)
DEMO_SERVICES = (
    ("Стрижка и укладка", 2500),
    ("Маникюр с покрытием", 1800),
    ("Окрашивание", 6500),
    ("Чистка лица", 4200),
    ("Педикюр", 2400),
    ("Ламинирование ресниц", 3000),
)
BOOKED_STAGE = "C1:NEW"
CONFIRMED_STAGE = "C1:PREPARATION"
MARK_STAGES = {"visited": "C1:WON", "no_show": "C1:LOSE"}
OPEN_STAGES = (BOOKED_STAGE, CONFIRMED_STAGE)


@dataclass
class AppointmentPlan:
    """One visit the demo books on the portal, and what its people do."""

    contact_id: int
    client_name: str
    service: str
    amount: int
    starts_at: datetime
    manager: int
    source: str = "WEB"
    stage: str = BOOKED_STAGE
    # Whether to open a chat with the client (for reminders), and the reply.
    chat: bool = False
    reply: str | None = None
    reply_delay: float = 4.0
    # "visited" or "no_show", marked by the manager at `mark_at` (portal time).
    outcome: str | None = None
    mark_at: datetime | None = None
    deal_id: int | None = None
    chat_id: int | None = None
    replied: bool = False
    marked: bool = False
    # Messages in the chat before this visit was booked, and when the app's
    # first message about this visit appeared.
    earlier_messages: int = 0
    seen_message_at: float | None = None

    def deal_fields(self, tz: tzinfo) -> dict[str, Any]:
        local = self.starts_at.astimezone(tz)
        return {
            "TITLE": f"{self.service} — {self.client_name}",
            "TYPE_ID": "SERVICE",
            "CATEGORY_ID": 1,
            "STAGE_ID": self.stage,
            "OPPORTUNITY": f"{self.amount:.2f}",
            "CURRENCY_ID": "RUB",
            "ASSIGNED_BY_ID": self.manager,
            "CONTACT_ID": self.contact_id,
            "SOURCE_ID": self.source,
            "BEGINDATE": local.date().isoformat(),
            "CLOSEDATE": local.date().isoformat(),
            "UF_CRM_APPOINTMENT_AT": local.replace(microsecond=0).isoformat(),
        }


def upcoming_plans(
    rng: random.Random,
    now: datetime,
    clients: list[dict[str, Any]],
    *,
    count: int = 6,
    first_in: timedelta = timedelta(minutes=32),
    spacing: timedelta = timedelta(minutes=4),
    mark_after: timedelta = timedelta(minutes=2),
) -> list[AppointmentPlan]:
    """Plan visits starting soon, each with an open-line chat and a scripted client.

    The clients are taken from ``clients`` (the studio's past clients) in
    order. Clients who confirm come. Of the silent ones, the first does not.
    """
    plans = []
    silent = 0
    for index in range(count):
        client = clients[index % len(clients)] if clients else None
        answer = REPLY_PLAN[index % len(REPLY_PLAN)]
        if answer == "cancel":
            outcome = None
        elif answer is None:
            outcome = "no_show" if silent == 0 else "visited"
            silent += 1
        else:
            outcome = "visited"
        service, price = DEMO_SERVICES[index % len(DEMO_SERVICES)]
        starts_at = now + first_in + spacing * index
        plans.append(
            AppointmentPlan(
                contact_id=int(client["contact_id"]) if client else 900 + index,
                client_name=_client_name(client, rng),
                service=service,
                amount=price,
                starts_at=starts_at,
                manager=int(client["manager"]) if client else 3,
                source="PARTNER",
                chat=True,
                reply=rng.choice(CLIENT_REPLIES[answer]) if answer else None,
                reply_delay=rng.uniform(3.0, 8.0),
                outcome=outcome,
                mark_at=starts_at + mark_after,
            )
        )
    return plans


def backlog_plans(
    rng: random.Random,
    now: datetime,
    clients: list[dict[str, Any]],
    *,
    count: int = 24,
    days: int = 14,
    no_show_share: float = 0.15,
    mark_within: float = 40.0,
) -> list[AppointmentPlan]:
    """Plan visits of the last ``days`` days that managers have not marked yet.

    The managers mark them within ``mark_within`` seconds of the runner's start.
    """
    plans = []
    for index in range(count):
        client = rng.choice(clients) if clients else None
        service, price = rng.choice(DEMO_SERVICES)
        day = now - timedelta(days=rng.randint(0, days))
        starts_at = day.replace(
            hour=rng.randint(10, 19), minute=rng.choice((0, 30)), second=0
        )
        if starts_at >= now - timedelta(minutes=20):
            starts_at = now - timedelta(minutes=rng.randint(20, 90))
        outcome = "no_show" if rng.random() < no_show_share else "visited"
        plans.append(
            AppointmentPlan(
                contact_id=int(client["contact_id"]) if client else 950 + index,
                client_name=_client_name(client, rng),
                service=service,
                amount=price,
                starts_at=starts_at,
                manager=int(client["manager"]) if client else 4,
                source="PARTNER",
                stage=rng.choice((BOOKED_STAGE, CONFIRMED_STAGE)),
                outcome=outcome,
                mark_at=now + timedelta(seconds=rng.uniform(3.0, mark_within)),
            )
        )
    return plans


def _client_name(client: dict[str, Any] | None, rng: random.Random) -> str:
    if client:
        return f"{client['name']} {client['last_name']}"
    return f"{rng.choice(FEMALE_NAMES)} {rng.choice(LAST_NAMES)[0]}"


class AppointmentRunner:
    """Background thread that plays clients replying to reminders, and managers.

    `book` creates the deals as their managers, with events, so the app
    learns about them the way it does on a real portal. It also opens a
    chat with each client whose plan has one. The thread then waits for the
    app's first message in each chat and replies as the plan specifies, and
    moves each deal to "visited" or "no-show" at its mark time unless the
    deal was cancelled. `notify` receives one line per action.
    """

    def __init__(
        self,
        portal: Portal,
        *,
        notify: Callable[[str], None] | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.portal = portal
        self.plans: list[AppointmentPlan] = []
        self.notify = notify or (lambda line: None)
        self.poll_seconds = poll_seconds
        self.replies_sent = 0
        self.marks = {"visited": 0, "no_show": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def book(self, plans: list[AppointmentPlan]) -> list[AppointmentPlan]:
        """Create a deal per plan, and a chat where the plan has one.

        Return the plans with their ids.
        """
        from . import crm

        for plan in plans:
            fields = plan.deal_fields(self.portal.tz)
            actor = self.portal.actor(plan.manager)
            plan.deal_id = crm.add_deal(self.portal, fields, actor)
            if plan.chat:
                plan.chat_id = self._chat_of(plan.contact_id)
                plan.earlier_messages = len(
                    self.portal.messages_to_client(plan.chat_id)
                )
            logger.info(
                "scenario booked deal %s for contact %s",
                plan.deal_id,
                plan.contact_id,
            )
        with self._lock:
            self.plans.extend(plans)
        return plans

    def _chat_of(self, contact_id: int) -> int:
        """Return the client's open-line chat, opening one on first contact."""
        with self.portal.lock:
            for chat in self.portal.openline_chats.data.values():
                if chat["CRM_ENTITY_TYPE"] == "CONTACT" and chat["CRM_ENTITY"] == int(
                    contact_id
                ):
                    return int(chat["CHAT_ID"])
        return self.portal.open_crm_chat("contact", contact_id, connector="telegrambot")

    def start(self) -> AppointmentRunner:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="emulator-appointments", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def marks_total(self) -> int:
        return sum(self.marks.values())

    def pending_marks(self, before: datetime) -> int:
        """Count the marks planned before ``before`` and not made yet."""
        with self._lock:
            return sum(
                1
                for plan in self.plans
                if plan.outcome
                and not plan.marked
                and plan.mark_at is not None
                and plan.mark_at <= before
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                plans = list(self.plans)
            for plan in plans:
                try:
                    self._answer(plan)
                    self._mark(plan)
                except Exception:
                    logger.exception("scenario failed on deal %s", plan.deal_id)
            self._stop.wait(self.poll_seconds)

    def _answer(self, plan: AppointmentPlan) -> None:
        if plan.chat_id is None or plan.reply is None or plan.replied:
            return
        if plan.seen_message_at is None:
            messages = self.portal.messages_to_client(plan.chat_id)
            if len(messages) <= plan.earlier_messages:
                return
            plan.seen_message_at = time.monotonic()
        if time.monotonic() - plan.seen_message_at < plan.reply_delay:
            return
        plan.replied = True
        self.portal.client_reply(plan.chat_id, plan.reply)
        self.replies_sent += 1
        self.notify(f"client of deal {plan.deal_id} answered: «{plan.reply}»")

    def _mark(self, plan: AppointmentPlan) -> None:
        if plan.marked or plan.outcome is None or plan.mark_at is None:
            return
        if self.portal.now() < plan.mark_at:
            return
        plan.marked = True
        stage = self.portal.deals[plan.deal_id]["STAGE_ID"]
        if stage not in OPEN_STAGES:
            return
        self.portal.move_deal(
            plan.deal_id, MARK_STAGES[plan.outcome], actor_id=plan.manager
        )
        self.marks[plan.outcome] += 1
        label = "came" if plan.outcome == "visited" else "did not come"
        self.notify(f"manager marked deal {plan.deal_id}: the client {label}")
