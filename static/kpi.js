// KPI tab: loads /api/v1/kpi with the signed token the page was rendered with
// and draws the cards and charts. The token lives in memory only (no cookies
// in iframes); downloads go through fetch with the token, then a blob link.
(function () {
  "use strict";

  var root = document.getElementById("kpi");
  var token = root.dataset.apiToken;
  var apiUrl = root.dataset.apiUrl;
  var apiBase = apiUrl.replace(/\/kpi$/, "");
  var lang = root.dataset.lang === "en" ? "en" : "ru";
  var locale = lang === "en" ? "en-US" : "ru-RU";
  // A narrow no-break space separates a number from "%" in both languages.
  var PERCENT_SIGN = "\u202f%";
  var numberFormat = new Intl.NumberFormat(locale, {maximumFractionDigits: 1});
  var moneyFormat = new Intl.NumberFormat(locale, {maximumFractionDigits: 0});
  // Amounts are in the portal's base currency (ISO 4217 code from the API);
  // without a known code they are shown as plain numbers.
  var currencyFormat = moneyFormat;
  var dayFormat = new Intl.DateTimeFormat(locale, {day: "numeric", month: "short"});
  var pluralRules = new Intl.PluralRules(locale);
  var charts = {};
  var lastQuery = "period=week";
  var importTimer = null;

  var TEXT = {
    ru: {tags: {booking: "Запись", price: "Цена", reschedule: "Перенос", cancel: "Отмена",
                complaint: "Жалоба", question: "Вопрос", spam: "Спам", urgent: "Срочно",
                review: "Проверить"},
         leads: "Лиды", median: "Медиана, мин", p90: "90-й процентиль, мин",
         conversion: "Конверсия", sla: "В срок SLA", visited: "Пришли", noShow: "Не пришли",
         cancelled: "Отменили", revenue: "Выручка", forecast: "Прогноз",
         low: "Нижняя граница 80\u202f%", high: "Верхняя граница 80\u202f%",
         target: "цель", of: "из", lateOf: "из них поздних {n}",
         amountKnown: "сумма есть у {share} визитов",
         leftOut: "визитов в другой валюте без курса: {n}, не учтены",
         channels: {openline: "Открытые линии", site: "Сайт", email: "E-mail",
                    phone: "Телефон", ads: "Реклама", referral: "Рекомендации",
                    partner: "Партнёры", other: "Другое"},
         manager: "Менеджер #{id}", noManager: "Без ответственного",
         urgentCount: "Срочных: {n}", spamCount: "Спам: {n} (не входит в число лидов)",
         reviewCount: "Проверить вручную: {n}",
         loadFailed: "Не удалось загрузить данные: ",
         missing: "Прогноз появится через {wait}: нужно {need} истории, есть {have}.",
         waitForms: {one: "дн.", few: "дн.", many: "дн.", other: "дн."},
         dayForms: {one: "день", few: "дня", many: "дней", other: "дня"},
         backtest: "Ошибка метода на ваших данных (MAPE по неделям): ",
         hits: "; факт попал в интервал 80\u202f% в неделях: ",
         noBacktest: "Ошибку метода покажем после 8 недель истории.",
         band: "Интервал 80\u202f%",
         rangeMissing: "Укажите обе даты: начало и конец периода.",
         rangeOrder: "Дата окончания раньше даты начала ({from}). Выберите более позднюю дату.",
         rangeLong: "Период не может быть длиннее 366 дней.",
         spendErrors: {month: "Укажите месяц в формате ГГГГ-ММ, например 2026-11.",
                       channel: "Неизвестный канал «{value}». Выберите из списка: {list}.",
                       amount: "Сумма должна быть числом не меньше 0.",
                       amountLarge: "Сумма слишком большая: допускается не больше 1\u00a0000\u00a0000\u00a0000\u00a0000."},
         edit: "Изменить", remove: "Удалить", cancel: "Отмена", saveRow: "Сохранить",
         deleted: "Удалено",
         windowOpen: "окно 3 мес. ещё не закрылось", noSpend: "расходы не внесены",
         importDone: "Загружено из истории: {leads}, {deals}",
         importRunning: "Загружено записей: {done} из {total}",
         importStarting: "Загружаем историю из Битрикс24…",
         importLeft: ", осталось около {time}",
         importFailed: "Загрузка истории остановилась с ошибкой. Запустите её заново.",
         leadForms: {one: "лид", few: "лида", many: "лидов", other: "лида"},
         dealForms: {one: "сделка", few: "сделки", many: "сделок", other: "сделки"},
         seconds: "{n} с", minutes: "{n} мин",
         saved: "Сохранено", saveFailed: "Не удалось сохранить: ",
         coverage: "Полнота данных: ",
         covTime: "время визита", covAmount: "сумма", covContact: "клиент",
         covChannel: "канал лида", feedNone: "ссылки нет"},
    en: {tags: {booking: "Booking", price: "Price", reschedule: "Reschedule", cancel: "Cancel",
                complaint: "Complaint", question: "Question", spam: "Spam", urgent: "Urgent",
                review: "Review"},
         leads: "Leads", median: "Median, min", p90: "90th percentile, min",
         conversion: "Conversion", sla: "Within SLA", visited: "Visited", noShow: "No-shows",
         cancelled: "Cancelled", revenue: "Revenue", forecast: "Forecast",
         low: "80\u202f% low", high: "80\u202f% high",
         target: "target", of: "of", lateOf: "{n} of them late",
         amountKnown: "amount known for {share} of visits",
         leftOut: "visits in another currency without a rate: {n}, not counted",
         channels: {openline: "Open lines", site: "Website", email: "E-mail",
                    phone: "Phone", ads: "Ads", referral: "Referrals", partner: "Partners",
                    other: "Other"},
         manager: "Manager #{id}", noManager: "No responsible user",
         urgentCount: "Urgent: {n}", spamCount: "Spam: {n} (not counted as leads)",
         reviewCount: "To check by hand: {n}",
         loadFailed: "Could not load the data: ",
         missing: "The forecast appears in {wait}: it needs {need} of history, there are {have}.",
         waitForms: {one: "day", other: "days"},
         dayForms: {one: "day", other: "days"},
         backtest: "Method error on your data (weekly MAPE): ",
         hits: "; actual weeks inside the 80\u202f% interval: ",
         noBacktest: "The method error is shown after 8 weeks of history.",
         band: "80\u202f% interval",
         rangeMissing: "Enter both dates: the start and the end of the range.",
         rangeOrder: "The end date is before the start date ({from}). Pick a later date.",
         rangeLong: "A range cannot be longer than 366 days.",
         spendErrors: {month: "Enter the month as YYYY-MM, for example 2026-11.",
                       channel: "Unknown channel \u201c{value}\u201d. Pick one from the list: {list}.",
                       amount: "The amount must be a number of 0 or more.",
                       amountLarge: "The amount is too large: at most 1,000,000,000,000."},
         edit: "Edit", remove: "Delete", cancel: "Cancel", saveRow: "Save",
         deleted: "Deleted",
         windowOpen: "the 3-month window is still open", noSpend: "no spend entered",
         importDone: "Loaded from history: {leads}, {deals}",
         importRunning: "Records loaded: {done} of {total}",
         importStarting: "Loading the history from Bitrix24…",
         importLeft: ", about {time} left",
         importFailed: "The history import stopped with an error. Start it again.",
         leadForms: {one: "lead", other: "leads"},
         dealForms: {one: "deal", other: "deals"},
         seconds: "{n} s", minutes: "{n} min",
         saved: "Saved", saveFailed: "Could not save: ",
         coverage: "Data coverage: ",
         covTime: "visit time", covAmount: "amount", covContact: "client",
         covChannel: "lead channel", feedNone: "no link"}
  };
  var FORMULAS = {
    ru: {conversion: "Лиды периода (без спама), дошедшие до записи ÷ все лиды периода",
         noShow: "Неявки ÷ (пришли + неявки) среди визитов, назначенных на период; цель < 10\u202f%",
         cancelled: "Отмены визитов периода; поздние — отменены позже, чем за N часов до визита",
         revenue: "Сумма сделок «пришёл» с визитом в периоде",
         avgCheck: "Выручка ÷ число визитов с суммой",
         perEmployee: "Выручка ÷ число сотрудников с визитами в периоде",
         retention: "Клиенты периода, пришедшие снова в течение 91 дня после первого визита ÷ все клиенты периода",
         cac: "Расходы на рекламу за месяцы периода ÷ новые клиенты (первый визит в периоде)",
         ltv: "Выручка за 12 месяцев до конца периода ÷ число клиентов с визитами за эти месяцы"},
    en: {conversion: "Period leads (spam excluded) that reached a booking ÷ all period leads",
         noShow: "No-shows ÷ (visited + no-shows) of appointments due in the period; target < 10\u202f%",
         cancelled: "Cancelled appointments of the period; late = cancelled less than N hours before",
         revenue: "Sum of visited deals with the appointment in the period",
         avgCheck: "Revenue ÷ visits with an amount",
         perEmployee: "Revenue ÷ employees with visits in the period",
         retention: "Period clients who came again within 91 days of their first visit ÷ all period clients",
         cac: "Ad spend of the period's months ÷ new clients (first visit in the period)",
         ltv: "Revenue of the 12 months up to the period end ÷ clients visiting in them"}
  };
  var EN_LABELS = {slaSettings: "SLA settings", reminderSettings: "Client reminders",
                   title: "First response to clients", period: "Period", day: "Today",
                   week: "7 days", month: "30 days", custom: "Custom", apply: "Show",
                   leads: "Leads", median: "Median response, min", p90: "90\u202f% answered within, min",
                   botMedian: "Bot: median, min",
                   answered: "Answered", within: "Within SLA", open: "Clocks running",
                   breached: "Overdue", perDay: "Leads per day", sla: "First response",
                   tagsTitle: "Client intents", responseTitle: "Response to clients",
                   funnelTitle: "Bookings, visits and money", conversion: "Lead-to-booking",
                   noShow: "No-shows", cancelled: "Cancellations", revenue: "Revenue",
                   avgCheck: "Average check", perEmployee: "Revenue per employee",
                   retention: "Return within 3 months", cac: "CAC", ltv: "LTV (12 months)",
                   channelsTitle: "Leads by channel", managersTitle: "Conversion and SLA by manager",
                   visitsTitle: "Visits, no-shows, cancellations", revenueTitle: "Revenue per day",
                   forecastTitle: "Bookings forecast, 4 weeks",
                   forecastRevenueTitle: "Revenue forecast, 4 weeks", importTitle: "History import",
                   importStart: "Import history again", adminTitle: "KPI settings",
                   segment: "Business type", salon: "Salon", clinic: "Clinic", fitness: "Fitness",
                   categories: "Booking pipelines (IDs)", stBooked: "Booked",
                   stConfirmed: "Confirmed", stVisited: "Visited", stNoShow: "No-show",
                   stCancelled: "Cancelled", leadBooked: "Lead statuses meaning booked",
                   apptField: "Appointment time field", convTarget: "Conversion target, %",
                   capacity: "Slots per day", email: "Owner e-mail", save: "Save",
                   spendTitle: "Ad spend", spendMonth: "Month", spendChannel: "Channel",
                   spendAmount: "Amount", spendAdd: "Add", spendEmpty: "No spend entered yet.",
                   feedTitle: "Spreadsheet link (IMPORTDATA)",
                   feedRotate: "New link", feedRevoke: "Revoke",
                   tzNote: "Business time, time zone", rangeFrom: "Range start",
                   rangeTo: "Range end", adminNav: "Settings"};
  var T = TEXT[lang];

  if (lang === "en") {
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      var key = el.getAttribute("data-i18n");
      if (EN_LABELS[key]) { el.textContent = EN_LABELS[key]; }
    });
    document.querySelectorAll("[data-i18n-aria]").forEach(function (el) {
      var key = el.getAttribute("data-i18n-aria");
      if (EN_LABELS[key]) { el.setAttribute("aria-label", EN_LABELS[key]); }
    });
  }
  document.querySelectorAll("[data-formula]").forEach(function (el) {
    el.title = FORMULAS[lang][el.getAttribute("data-formula")] || "";
  });

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, name) {
      return values[name] === undefined ? match : values[name];
    });
  }

  function number(value) {
    return value === null || value === undefined ? "—" : numberFormat.format(value);
  }

  // A share 0..1 as a percentage with at most one decimal: "33,3 %" in Russian.
  function percent(value) {
    return value === null || value === undefined ? "—" :
      numberFormat.format(Math.round(value * 1000) / 10) + PERCENT_SIGN;
  }

  // An amount in the base currency: "12 500 ₽" in Russian, "₽12,500" in English.
  function money(value) {
    return value === null || value === undefined ? "—" : currencyFormat.format(value);
  }

  // A plain whole number, for amounts the owner enters (ad spend).
  function amount(value) {
    return value === null || value === undefined ? "—" : moneyFormat.format(value);
  }

  function setCurrency(code) {
    currencyFormat = moneyFormat;
    root.dataset.currency = code || "";
    if (!code) { return; }
    try {
      currencyFormat = new Intl.NumberFormat(locale, {
        style: "currency", currency: code, currencyDisplay: "narrowSymbol",
        minimumFractionDigits: 0, maximumFractionDigits: 0});
    } catch (err) {
      // An unknown code: keep plain numbers rather than fail the tab.
      currencyFormat = moneyFormat;
    }
  }

  // Axis ticks and tooltips of a chart of amounts.
  function moneyOptions(extra) {
    return Object.assign({
      scales: {y: {beginAtZero: true, ticks: {callback: function (value) { return money(value); }}}},
      plugins: {legend: {display: false},
                tooltip: {callbacks: {label: function (item) {
                  return item.dataset.label + ": " + money(item.parsed.y);
                }}}}}, extra || {});
  }

  function counted(count, forms) {
    return numberFormat.format(count) + " " + (forms[pluralRules.select(count)] || forms.other);
  }

  // "2026-11-28" as a short local date ("28 нояб.", "Nov 28"), read as a
  // calendar day so the browser's time zone cannot shift it.
  function day(iso) {
    var parts = iso.split("-").map(Number);
    return dayFormat.format(new Date(parts[0], parts[1] - 1, parts[2]));
  }

  function channelName(code) {
    return T.channels[code] || code;
  }

  function show(id, value) {
    var text = typeof value === "number" ? number(value) : value;
    document.getElementById(id).textContent = text === null || text === undefined ? "—" : text;
  }

  function light(cardId, status) {
    var card = document.getElementById(cardId);
    ["good", "warn", "bad"].forEach(function (name) {
      card.classList.toggle(name, status === name);
    });
  }

  function draw(id, config) {
    if (charts[id]) { charts[id].destroy(); }
    config.options = Object.assign({animation: false, maintainAspectRatio: true, locale: locale},
                                   config.options || {});
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function bars(id, labels, datasets, options) {
    draw(id, {type: "bar", data: {labels: labels, datasets: datasets}, options: options || {}});
  }

  // Options of a chart of whole counts: integer ticks and no legend.
  function countOptions(extra) {
    return Object.assign({plugins: {legend: {display: false}},
                          scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}, extra || {});
  }

  function api(path, options) {
    options = options || {};
    options.headers = Object.assign({"Authorization": "Bearer " + token}, options.headers || {});
    return fetch(apiBase + path, options).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.blob();
      }
      return response.json().then(function (body) {
        if (!response.ok) {
          var error = new Error(body.error || response.status);
          error.field = body.field;
          throw error;
        }
        return body;
      });
    });
  }

  // Fits the portal's frame to the page (static/frame.js); a no-op outside Bitrix24.
  function fitFrame() {
    if (window.OtklikFrame) { window.OtklikFrame.fit(); }
  }

  function fail(err) {
    var error = document.getElementById("error");
    error.textContent = T.loadFailed + err.message;
    error.hidden = false;
    fitFrame();
  }

  function renderResponse(data) {
    show("leads-total", data.leads_total);
    show("median", data.first_response_minutes.median);
    show("p90", data.first_response_minutes.p90);
    show("bot-median", data.bot_response_minutes ? data.bot_response_minutes.median : null);
    show("answered", percent(data.answered_share));
    show("within", percent(data.within_sla_share));
    show("open", data.open_clocks);
    show("breached", data.breached_clocks);
    light("card-answered", data.status ? data.status.answered_share : "none");
    light("card-median", data.status ? data.status.first_response_median : "none");

    bars("chart-leads", data.leads_per_day.map(function (d) { return day(d.date); }),
         [{label: T.leads, data: data.leads_per_day.map(function (d) { return d.leads; }),
           backgroundColor: "#2fc6f6"}], countOptions());
    bars("chart-sla", [T.median, T.p90],
         [{data: [data.first_response_minutes.median, data.first_response_minutes.p90],
           backgroundColor: ["#9dcf00", "#ffa900"]}], {plugins: {legend: {display: false}}});
    // The chart shows intents only. The urgent and spam flags and the
    // "check by hand" mark are counts of their own under it.
    var intents = Object.keys(data.tags).filter(function (t) { return FLAGS.indexOf(t) === -1; });
    draw("chart-tags", {
      type: "doughnut",
      data: {labels: intents.map(function (t) { return T.tags[t] || t; }),
             datasets: [{data: intents.map(function (t) { return data.tags[t]; })}]}
    });
    var flags = [fill(T.urgentCount, {n: number(data.urgent || 0)}),
                 fill(T.spamCount, {n: number(data.spam || 0)})];
    if (data.tags.review) { flags.push(fill(T.reviewCount, {n: number(data.tags.review)})); }
    show("tags-flags", flags.join(" · "));
  }

  var FLAGS = ["urgent", "spam", "review"];

  function managerName(key, names) {
    if (key === "none") { return T.noManager; }
    return (names && names[key]) || fill(T.manager, {id: key});
  }

  function percentAxis() {
    return {beginAtZero: true,
            ticks: {callback: function (value) { return numberFormat.format(value) + PERCENT_SIGN; }}};
  }

  function renderFunnel(data) {
    var conv = data.conversion, visits = data.appointments, ret = data.retention,
        acq = data.acquisition, cov = data.coverage;
    show("conversion", percent(conv.rate));
    show("conversion-target", conv.target === null ? "" : T.target + " " + percent(conv.target));
    light("card-conversion", data.status.conversion);
    show("no-show", percent(visits.no_show_rate));
    show("no-show-detail", number(visits.no_show) + " " + T.of + " " +
         number(visits.visited + visits.no_show));
    light("card-noshow", data.status.no_show_rate);
    show("cancelled", visits.cancelled);
    show("cancelled-detail", visits.cancelled ? fill(T.lateOf, {n: number(visits.late_cancelled)}) : "");
    show("revenue", money(visits.revenue));
    var coverageNotes = [];
    if (visits.amount_coverage !== null) {
      coverageNotes.push(fill(T.amountKnown, {share: percent(visits.amount_coverage)}));
    }
    if (data.currency && data.currency.visits_left_out) {
      coverageNotes.push(fill(T.leftOut, {n: number(data.currency.visits_left_out)}));
    }
    show("revenue-coverage", coverageNotes.join("; "));
    show("avg-check", money(visits.average_check));
    show("per-employee", money(visits.revenue_per_employee));
    show("retention", percent(ret.rate));
    show("retention-note", ret.window_complete ? "" : T.windowOpen);
    // Clients of a recent period have not had three months to come back:
    // their share is not judged against the target yet.
    light("card-retention", ret.window_complete ? data.status.retention : null);
    show("cac", money(acq.cac));
    show("cac-note", acq.spend_entered ? "" : T.noSpend);
    show("ltv", money(acq.ltv_12m));
    show("coverage-line", T.coverage + [
      T.covTime + " " + percent(cov.appointment_time),
      T.covAmount + " " + percent(cov.amount),
      T.covContact + " " + percent(cov.contact),
      T.covChannel + " " + percent(cov.lead_channel)].join(", "));

    bars("chart-channels", data.by_channel.map(function (r) { return channelName(r.key); }),
         [{label: T.leads, data: data.by_channel.map(function (r) { return r.leads; }),
           backgroundColor: "#2fc6f6"}], countOptions());
    var managers = conv.by_manager.map(function (r) { return r.key; });
    var names = data.names ? data.names.managers : {};
    var slaByManager = {};
    data.by_manager.forEach(function (r) { slaByManager[r.key] = r.within_sla_share; });
    bars("chart-managers", managers.map(function (k) { return managerName(k, names); }), [
      {label: T.conversion, data: conv.by_manager.map(function (r) { return r.rate === null ? 0 : r.rate * 100; }),
       backgroundColor: "#9dcf00"},
      {label: T.sla, data: managers.map(function (k) { var v = slaByManager[k]; return v === undefined || v === null ? 0 : v * 100; }),
       backgroundColor: "#ffa900"}],
      {scales: {y: percentAxis()},
       plugins: {tooltip: {callbacks: {label: function (item) {
         return item.dataset.label + ": " + numberFormat.format(item.parsed.y) + PERCENT_SIGN;
       }}}}});
    var days = data.deals_per_day.map(function (d) { return day(d.date); });
    bars("chart-visits", days, [
      {label: T.visited, data: data.deals_per_day.map(function (d) { return d.visited; }), backgroundColor: "#7bd500"},
      {label: T.noShow, data: data.deals_per_day.map(function (d) { return d.no_show; }), backgroundColor: "#ff5752"},
      {label: T.cancelled, data: data.deals_per_day.map(function (d) { return d.cancelled; }), backgroundColor: "#c2c6ca"}],
      {scales: {x: {stacked: true}, y: {stacked: true, ticks: {precision: 0}}}});
    bars("chart-revenue", days,
         [{label: T.revenue, data: data.deals_per_day.map(function (d) { return d.revenue; }),
           backgroundColor: "#39a8ef"}], moneyOptions());
  }

  function forecastNote(series) {
    var bt = series.backtest;
    if (!bt || bt.mape === null) { return T.noBacktest; }
    return T.backtest + percent(bt.mape) + T.hits + bt.interval_hits;
  }

  function forecastChart(id, series, color, band, isMoney) {
    var weeks = series.weeks;
    draw(id, {
      type: "line",
      data: {labels: weeks.map(function (w) { return day(w.from); }),
             datasets: [
               {label: T.low, data: weeks.map(function (w) { return w.low; }),
                borderColor: "#c2c6ca", borderDash: [4, 4], pointRadius: 0, fill: false},
               {label: T.band, data: weeks.map(function (w) { return w.high; }),
                borderColor: "#c2c6ca", borderDash: [4, 4], pointRadius: 0,
                backgroundColor: band, fill: "-1"},
               {label: T.forecast, data: weeks.map(function (w) { return w.value; }),
                borderColor: color, backgroundColor: color, fill: false}]},
      options: {plugins: {legend: {labels: {filter: function (item) { return item.datasetIndex > 0; }}},
                          tooltip: isMoney ? {callbacks: {label: function (item) {
                            return item.dataset.label + ": " + money(item.parsed.y);
                          }}} : {}},
                scales: {y: isMoney ?
                  {beginAtZero: true, ticks: {callback: function (value) { return money(value); }}} :
                  {beginAtZero: true}}}
    });
  }

  // Both forecasts come from one response: bookings and revenue, each with
  // its own backtest. Before 4 weeks of history both notes show how much is missing.
  function renderForecast(result) {
    var parts = [
      {note: "forecast-note", canvas: "chart-forecast", key: "bookings",
       color: "#2fc6f6", band: "rgba(47, 198, 246, 0.18)"},
      {note: "forecast-revenue-note", canvas: "chart-forecast-revenue", key: "revenue",
       color: "#39a8ef", band: "rgba(57, 168, 239, 0.18)"}];
    if (result.available && result.currency && !root.dataset.currency) {
      setCurrency(result.currency);
    }
    parts.forEach(function (part) {
      var note = document.getElementById(part.note);
      var canvas = document.getElementById(part.canvas);
      if (!result.available) {
        note.textContent = fill(T.missing, {
          wait: counted(result.missing_days, T.waitForms),
          need: counted(result.history_days + result.missing_days, T.dayForms),
          have: number(result.history_days)});
        canvas.hidden = true;
        return;
      }
      canvas.hidden = false;
      note.textContent = forecastNote(result[part.key]);
      forecastChart(part.canvas, result[part.key], part.color, part.band, part.key === "revenue");
    });
    root.dataset.forecast = result.available ? "shown" : "hidden";
    fitFrame();
  }

  function rowsOf(progress, entity) {
    var found = (progress.entities || []).filter(function (e) { return e.entity === entity; });
    return found.length ? found[0].rows_done : 0;
  }

  function duration(seconds) {
    return seconds < 60 ? fill(T.seconds, {n: Math.max(1, Math.ceil(seconds))}) :
      fill(T.minutes, {n: number(Math.ceil(seconds / 60))});
  }

  // Entities whose row count the import has not read yet.
  function countsPending(progress) {
    return (progress.entities || []).some(function (e) {
      return e.rows_total === null && e.status !== "done";
    });
  }

  // The line shows what was loaded in words: leads and deals when done, the
  // records read so far while running. With nothing to read it stays hidden.
  function importText(progress) {
    if (progress.status === "failed") { return T.importFailed; }
    if (progress.status === "running" && !progress.rows_total) { return T.importStarting; }
    if (progress.status === "done") {
      return fill(T.importDone, {leads: counted(rowsOf(progress, "leads"), T.leadForms),
                                 deals: counted(rowsOf(progress, "deals"), T.dealForms)});
    }
    var text = fill(T.importRunning, {done: number(progress.rows_done),
                                      total: number(progress.rows_total)});
    if (progress.eta_seconds !== null && progress.eta_seconds !== undefined &&
        progress.rows_done < progress.rows_total) {
      text += fill(T.importLeft, {time: duration(progress.eta_seconds)});
    }
    return text;
  }

  function renderImport(progress) {
    var box = document.getElementById("import");
    var empty = !progress.rows_total && !progress.rows_done && !countsPending(progress);
    root.dataset.import = progress.status;
    box.hidden = progress.status === "not_started" || (empty && progress.status !== "failed");
    document.getElementById("import-bar").value = progress.share || 0;
    document.getElementById("import-bar").hidden =
      progress.status !== "running" || !progress.rows_total;
    document.getElementById("import-text").textContent = box.hidden ? "" : importText(progress);
    clearTimeout(importTimer);
    if (progress.status === "running") {
      importTimer = setTimeout(loadImport, 5000);
    }
    fitFrame();
  }

  function loadImport() {
    api("/kpi/import").then(renderImport).catch(fail);
  }

  function rangeError(message, field) {
    var box = document.getElementById("range-error");
    ["from", "to"].forEach(function (id) {
      var input = document.getElementById(id);
      if (id === field || (field === "both" && !input.value)) {
        input.setAttribute("aria-invalid", "true");
      } else {
        input.removeAttribute("aria-invalid");
      }
    });
    box.textContent = message || "";
    box.hidden = !message;
  }

  // Checks the custom range before asking the API: both dates given, the end
  // not before the start, at most 366 days (the API's own limit).
  function customQuery() {
    var from = document.getElementById("from").value, to = document.getElementById("to").value;
    if (!from || !to) {
      rangeError(T.rangeMissing, "both");
      return null;
    }
    if (to < from) {
      rangeError(fill(T.rangeOrder, {from: day(from)}), "to");
      return null;
    }
    var spanDays = (Date.parse(to) - Date.parse(from)) / 86400000;
    if (spanDays >= 366) {
      rangeError(T.rangeLong, "to");
      return null;
    }
    rangeError("", null);
    return "from=" + from + "&to=" + to;
  }

  function query() {
    var period = document.getElementById("period").value;
    if (period === "custom") { return customQuery(); }
    return "period=" + encodeURIComponent(period);
  }

  function load() {
    var q = query();
    if (!q) { return; }
    lastQuery = q;
    api("/kpi?" + q).then(function (data) {
      document.getElementById("error").hidden = true;
      setCurrency(data.currency ? data.currency.code : null);
      renderResponse(data);
      renderFunnel(data);
      root.dataset.loaded = "true";
      fitFrame();
    }).catch(function (err) {
      if (err.field === "from" || err.field === "to") {
        rangeError(err.message, err.field);
        fitFrame();
      } else {
        fail(err);
      }
    });
  }

  function download(format) {
    api("/reports/kpi." + format + "?" + lastQuery).then(function (blob) {
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "otklik-kpi." + format;
      document.body.appendChild(link);
      link.click();
      link.remove();
    }).catch(fail);
  }

  function codes(value) {
    return value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  }

  function fillSettings(settings) {
    document.querySelectorAll(".admin-only").forEach(function (el) { el.hidden = !settings.is_admin; });
    var form = document.getElementById("mapping-form");
    var m = settings.mapping;
    form.segment.value = m.segment;
    form.deal_categories.value = (m.deal_categories || []).join(", ");
    ["booked", "confirmed", "visited", "no_show", "cancelled"].forEach(function (outcome) {
      form[outcome].value = ((m.deal_stages || {})[outcome] || []).join(", ");
    });
    form.lead_booked.value = ((m.lead_statuses || {}).booked || []).join(", ");
    form.appointment_field.value = m.appointment_field;
    form.conversion_target.value = settings.targets.conversion === null ? "" :
      Math.round(settings.targets.conversion * 1000) / 10;
    form.daily_capacity.value = settings.daily_capacity === null ? "" : settings.daily_capacity;
    form.owner_email.value = settings.owner_email || "";
    if (settings.is_admin && !spendChannels.length) { loadSpend(); }
    fitFrame();
  }

  // Input of the settings form for each "field" the settings API names.
  var SETTINGS_INPUTS = {"deal_stages.booked": "booked", "deal_stages.confirmed": "confirmed",
                         "deal_stages.visited": "visited", "deal_stages.no_show": "no_show",
                         "deal_stages.cancelled": "cancelled", "lead_statuses.booked": "lead_booked",
                         lead_statuses: "lead_booked", targets: "conversion_target"};

  function settingsStatus(text, isError) {
    var status = document.getElementById("mapping-status");
    status.textContent = text;
    status.className = isError ? "error" : "muted";
    if (isError) {
      status.setAttribute("role", "alert");
    } else {
      status.removeAttribute("role");
    }
  }

  function settingsError(err, form) {
    settingsStatus(T.saveFailed + err.message, true);
    var input = err.field ? form.elements[SETTINGS_INPUTS[err.field] || err.field] : null;
    if (input && input.setAttribute) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    fitFrame();
  }

  function saveSettings(event) {
    event.preventDefault();
    var form = event.target;
    settingsStatus("", false);
    form.querySelectorAll("[aria-invalid]").forEach(function (el) {
      el.removeAttribute("aria-invalid");
    });
    var stages = {};
    ["booked", "confirmed", "visited", "no_show", "cancelled"].forEach(function (outcome) {
      stages[outcome] = codes(form[outcome].value);
    });
    var body = {
      mapping: {segment: form.segment.value,
                deal_categories: codes(form.deal_categories.value).map(Number),
                deal_stages: stages, lead_statuses: {booked: codes(form.lead_booked.value)},
                appointment_field: form.appointment_field.value.trim()},
      daily_capacity: form.daily_capacity.value === "" ? null : Number(form.daily_capacity.value),
      owner_email: form.owner_email.value.trim() || null
    };
    if (form.conversion_target.value !== "") {
      body.targets = {conversion: Number(form.conversion_target.value) / 100};
    }
    api("/kpi/settings", {method: "PUT", headers: {"Content-Type": "application/json"},
                          body: JSON.stringify(body)})
      .then(function (settings) {
        fillSettings(settings);
        settingsStatus(T.saved, false);
        load();
      }).catch(function (err) { settingsError(err, form); });
  }

  var spendChannels = [];

  // The largest amount the spend API accepts (MAX_SPEND in handlers/api.py).
  var MAX_SPEND = 1e12;

  function spendError(err, form) {
    var box = document.getElementById("spend-error");
    var message = err.message;
    var key = err.field;
    if (key === "amount" && form && Number(form.amount.value) > MAX_SPEND) {
      key = "amountLarge";
    }
    if (key && T.spendErrors[key]) {
      message = T.spendErrors[key]
        .replace("{value}", form ? channelName(form.channel.value) : "")
        .replace("{list}", spendChannels.map(channelName).join(", "));
    }
    box.textContent = message;
    box.hidden = false;
    if (form && err.field && form[err.field] && form[err.field].setAttribute) {
      form[err.field].setAttribute("aria-invalid", "true");
      form[err.field].focus();
    }
  }

  function clearSpendError() {
    document.getElementById("spend-error").hidden = true;
    document.querySelectorAll("#spend [aria-invalid]").forEach(function (el) {
      el.removeAttribute("aria-invalid");
    });
  }

  function spendButton(text, action, onClick) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.dataset.action = action;
    button.addEventListener("click", onClick);
    return button;
  }

  function renderSpend(body) {
    spendChannels = body.channels || [];
    var select = document.getElementById("spend-form").elements.channel;
    var chosen = select.value;
    select.textContent = "";
    spendChannels.forEach(function (code) {
      var option = document.createElement("option");
      option.value = code;
      option.textContent = channelName(code);
      select.appendChild(option);
    });
    if (spendChannels.indexOf(chosen) !== -1) { select.value = chosen; }
    var tbody = document.querySelector("#spend-table tbody");
    tbody.textContent = "";
    body.items.forEach(function (item) {
      var row = document.createElement("tr");
      row.dataset.month = item.month;
      row.dataset.channel = item.channel;
      [item.month, channelName(item.channel), amount(item.amount)].forEach(function (text, index) {
        var cell = document.createElement("td");
        cell.textContent = text;
        if (index === 2) { cell.className = "amount"; }
        row.appendChild(cell);
      });
      var actions = document.createElement("td");
      actions.appendChild(spendButton(T.edit, "edit", function () { editSpend(row, item); }));
      actions.appendChild(spendButton(T.remove, "delete", function () { deleteSpend(item); }));
      row.appendChild(actions);
      tbody.appendChild(row);
    });
    document.getElementById("spend-table").hidden = body.items.length === 0;
    document.getElementById("spend-empty").hidden = body.items.length > 0;
    root.dataset.spendRows = String(body.items.length);
    fitFrame();
  }

  function loadSpend() {
    api("/kpi/spend").then(renderSpend).catch(fail);
  }

  function putSpend(values, form) {
    clearSpendError();
    return api("/kpi/spend", {method: "PUT", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify(values)})
      .then(function (body) {
        renderSpend(body);
        document.getElementById("spend-status").textContent = T.saved;
        load();
        return true;
      }).catch(function (err) { spendError(err, form); return false; });
  }

  function amountOf(raw) {
    // An empty or non-numeric field is sent as text, so the API names it.
    return raw.trim() !== "" && isFinite(Number(raw)) ? Number(raw) : raw;
  }

  function editSpend(row, item) {
    var cell = row.querySelector("td.amount");
    var actions = row.lastChild;
    var input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.name = "amount";
    input.value = item.amount;
    cell.textContent = "";
    cell.appendChild(input);
    actions.textContent = "";
    actions.appendChild(spendButton(T.saveRow, "save", function () {
      putSpend({month: item.month, channel: item.channel, amount: amountOf(input.value)},
               {amount: input, channel: {value: item.channel}});
    }));
    actions.appendChild(spendButton(T.cancel, "cancel", function () {
      clearSpendError();
      loadSpend();
    }));
    input.focus();
  }

  function deleteSpend(item) {
    clearSpendError();
    var query = "?month=" + encodeURIComponent(item.month) + "&channel=" + encodeURIComponent(item.channel);
    api("/kpi/spend" + query, {method: "DELETE"}).then(function (body) {
      renderSpend(body);
      document.getElementById("spend-status").textContent = T.deleted;
      load();
    }).catch(function (err) { spendError(err, null); });
  }

  function saveSpend(event) {
    event.preventDefault();
    var form = event.target;
    putSpend({month: form.month.value.trim(), channel: form.channel.value,
              amount: amountOf(form.amount.value)}, form)
      .then(function (ok) { if (ok) { form.reset(); } });
  }

  function feed(method) {
    api("/kpi/feed", {method: method}).then(function (body) {
      document.getElementById("feed-url").textContent = body.url || T.feedNone;
    }).catch(fail);
  }

  document.getElementById("period").addEventListener("change", function () {
    var custom = document.getElementById("period").value === "custom";
    document.getElementById("custom-range").hidden = !custom;
    if (!custom) {
      rangeError("", null);
      load();
    }
  });
  document.getElementById("apply-range").addEventListener("click", load);
  document.getElementById("from").addEventListener("change", function () {
    document.getElementById("to").min = document.getElementById("from").value;
  });
  document.getElementById("download-csv").addEventListener("click", function () { download("csv"); });
  document.getElementById("download-xlsx").addEventListener("click", function () { download("xlsx"); });
  document.getElementById("import-start").addEventListener("click", function () {
    api("/kpi/import", {method: "POST", headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({restart: true})}).then(renderImport).catch(fail);
  });
  document.getElementById("mapping-form").addEventListener("submit", saveSettings);
  document.getElementById("spend-form").addEventListener("submit", saveSpend);
  document.getElementById("feed-rotate").addEventListener("click", function () { feed("POST"); });
  document.getElementById("feed-revoke").addEventListener("click", function () { feed("DELETE"); });

  document.querySelectorAll(".admin-only").forEach(function (el) { el.hidden = true; });
  load();
  loadImport();
  api("/kpi/forecast").then(renderForecast).catch(fail);
  api("/kpi/settings").then(fillSettings).catch(fail);
}());
