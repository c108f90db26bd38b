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
         low: "Нижняя граница 80 %", high: "Верхняя граница 80 %",
         target: "цель", of: "из", late: "поздних",
         loadFailed: "Не удалось загрузить данные: ",
         missing: "Прогноз появится, когда накопится 4 недели истории: не хватает дней — ",
         missingOf: " из ",
         backtest: "Ошибка метода на ваших данных (MAPE по неделям): ",
         hits: "; факт попал в интервал 80 % в неделях: ",
         noBacktest: "Ошибку метода покажем после 8 недель истории.",
         band: "Интервал 80 %",
         spendErrors: {month: "Укажите месяц в формате ГГГГ-ММ, например 2026-11.",
                       channel: "Неизвестный канал «{value}». Выберите из списка: {list}.",
                       amount: "Сумма должна быть числом не меньше 0."},
         edit: "Изменить", remove: "Удалить", cancel: "Отмена", saveRow: "Сохранить",
         deleted: "Удалено",
         windowOpen: "окно 3 мес. ещё не закрылось", noSpend: "расходы не внесены",
         importDone: "История загружена", importLeft: "осталось примерно ",
         sec: " с", saved: "Сохранено", coverage: "Полнота данных: ",
         covTime: "время визита", covAmount: "сумма", covContact: "клиент",
         covChannel: "канал лида", feedNone: "ссылки нет"},
    en: {tags: {booking: "Booking", price: "Price", reschedule: "Reschedule", cancel: "Cancel",
                complaint: "Complaint", question: "Question", spam: "Spam", urgent: "Urgent",
                review: "Review"},
         leads: "Leads", median: "Median, min", p90: "90th percentile, min",
         conversion: "Conversion", sla: "Within SLA", visited: "Visited", noShow: "No-shows",
         cancelled: "Cancelled", revenue: "Revenue", forecast: "Forecast",
         low: "80 % low", high: "80 % high",
         target: "target", of: "of", late: "late",
         loadFailed: "Could not load the data: ",
         missing: "The forecast appears after 4 weeks of history; days missing: ",
         missingOf: " of ",
         backtest: "Method error on your data (weekly MAPE): ",
         hits: "; actual weeks inside the 80 % interval: ",
         noBacktest: "The method error is shown after 8 weeks of history.",
         band: "80 % interval",
         spendErrors: {month: "Enter the month as YYYY-MM, for example 2026-11.",
                       channel: "Unknown channel \u201c{value}\u201d. Pick one from the list: {list}.",
                       amount: "The amount must be a number of 0 or more."},
         edit: "Edit", remove: "Delete", cancel: "Cancel", saveRow: "Save",
         deleted: "Deleted",
         windowOpen: "the 3-month window is still open", noSpend: "no spend entered",
         importDone: "History loaded", importLeft: "about ",
         sec: " s left", saved: "Saved", coverage: "Data coverage: ",
         covTime: "visit time", covAmount: "amount", covContact: "client",
         covChannel: "lead channel", feedNone: "no link"}
  };
  var FORMULAS = {
    ru: {conversion: "Лиды периода (без спама), дошедшие до записи ÷ все лиды периода",
         noShow: "Неявки ÷ (пришли + неявки) среди визитов, назначенных на период; цель < 10 %",
         cancelled: "Отмены визитов периода; поздние — отменены позже, чем за N часов до визита",
         revenue: "Сумма сделок «пришёл» с визитом в периоде",
         avgCheck: "Выручка ÷ число визитов с суммой",
         perEmployee: "Выручка ÷ число сотрудников с визитами в периоде",
         retention: "Клиенты периода, пришедшие снова в течение 91 дня после первого визита ÷ все клиенты периода",
         cac: "Расходы на рекламу за месяцы периода ÷ новые клиенты (первый визит в периоде)",
         ltv: "Выручка за 12 месяцев до конца периода ÷ число клиентов с визитами за эти месяцы"},
    en: {conversion: "Period leads (spam excluded) that reached a booking ÷ all period leads",
         noShow: "No-shows ÷ (visited + no-shows) of appointments due in the period; target < 10 %",
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
                   leads: "Leads", median: "Median response, min", p90: "90% answered within, min",
                   botMedian: "Bot: median, min",
                   answered: "Answered", within: "Within SLA", open: "Clocks running",
                   breached: "Overdue", perDay: "Leads per day", sla: "First response",
                   tagsTitle: "Client intents", responseTitle: "Response to clients",
                   funnelTitle: "Bookings, visits and money", conversion: "Lead-to-booking",
                   noShow: "No-shows", cancelled: "Cancelled (late)", revenue: "Revenue",
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
                   tzNote: "Business time, time zone"};
  var T = TEXT[lang];

  if (lang === "en") {
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      var key = el.getAttribute("data-i18n");
      if (EN_LABELS[key]) { el.textContent = EN_LABELS[key]; }
    });
  }
  document.querySelectorAll("[data-formula]").forEach(function (el) {
    el.title = FORMULAS[lang][el.getAttribute("data-formula")] || "";
  });

  function percent(value) {
    return value === null || value === undefined ? "—" : Math.round(value * 1000) / 10 + " %";
  }

  function money(value) {
    return value === null || value === undefined ? "—" :
      Math.round(value).toLocaleString(lang === "en" ? "en-US" : "ru-RU");
  }

  function show(id, value) {
    document.getElementById(id).textContent = value === null || value === undefined ? "—" : value;
  }

  function light(cardId, status) {
    var card = document.getElementById(cardId);
    ["good", "warn", "bad"].forEach(function (name) {
      card.classList.toggle(name, status === name);
    });
  }

  function draw(id, config) {
    if (charts[id]) { charts[id].destroy(); }
    config.options = Object.assign({animation: false, maintainAspectRatio: true}, config.options || {});
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function bars(id, labels, datasets, options) {
    draw(id, {type: "bar", data: {labels: labels, datasets: datasets}, options: options || {}});
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

  function fail(err) {
    var error = document.getElementById("error");
    error.textContent = T.loadFailed + err.message;
    error.hidden = false;
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

    bars("chart-leads", data.leads_per_day.map(function (d) { return d.date.slice(5); }),
         [{label: T.leads, data: data.leads_per_day.map(function (d) { return d.leads; }),
           backgroundColor: "#2fc6f6"}], {plugins: {legend: {display: false}}});
    bars("chart-sla", [T.median, T.p90],
         [{data: [data.first_response_minutes.median, data.first_response_minutes.p90],
           backgroundColor: ["#9dcf00", "#ffa900"]}], {plugins: {legend: {display: false}}});
    var tagNames = Object.keys(data.tags);
    draw("chart-tags", {
      type: "doughnut",
      data: {labels: tagNames.map(function (t) { return T.tags[t] || t; }),
             datasets: [{data: tagNames.map(function (t) { return data.tags[t]; })}]}
    });
  }

  function renderFunnel(data) {
    var conv = data.conversion, visits = data.appointments, ret = data.retention,
        acq = data.acquisition, cov = data.coverage;
    show("conversion", percent(conv.rate));
    show("conversion-target", conv.target === null ? "" : T.target + " " + percent(conv.target));
    light("card-conversion", data.status.conversion);
    show("no-show", percent(visits.no_show_rate));
    show("no-show-detail", visits.no_show + " " + T.of + " " + (visits.visited + visits.no_show));
    light("card-noshow", data.status.no_show_rate);
    show("cancelled", visits.cancelled + " (" + visits.late_cancelled + " " + T.late + ")");
    show("revenue", money(visits.revenue));
    show("revenue-coverage", visits.amount_coverage === null ? "" :
         percent(visits.amount_coverage) + " " + T.covAmount);
    show("avg-check", money(visits.average_check));
    show("per-employee", money(visits.revenue_per_employee));
    show("retention", percent(ret.rate));
    show("retention-note", ret.window_complete ? "" : T.windowOpen);
    light("card-retention", data.status.retention);
    show("cac", money(acq.cac));
    show("cac-note", acq.spend_entered ? "" : T.noSpend);
    show("ltv", money(acq.ltv_12m));
    show("coverage-line", T.coverage + [
      T.covTime + " " + percent(cov.appointment_time),
      T.covAmount + " " + percent(cov.amount),
      T.covContact + " " + percent(cov.contact),
      T.covChannel + " " + percent(cov.lead_channel)].join(", "));

    bars("chart-channels", data.by_channel.map(function (r) { return r.key; }),
         [{label: T.leads, data: data.by_channel.map(function (r) { return r.leads; }),
           backgroundColor: "#2fc6f6"}], {plugins: {legend: {display: false}}});
    var managers = conv.by_manager.map(function (r) { return r.key; });
    var slaByManager = {};
    data.by_manager.forEach(function (r) { slaByManager[r.key] = r.within_sla_share; });
    bars("chart-managers", managers, [
      {label: T.conversion, data: conv.by_manager.map(function (r) { return r.rate === null ? 0 : r.rate * 100; }),
       backgroundColor: "#9dcf00"},
      {label: T.sla, data: managers.map(function (k) { var v = slaByManager[k]; return v === undefined || v === null ? 0 : v * 100; }),
       backgroundColor: "#ffa900"}]);
    var days = data.deals_per_day.map(function (d) { return d.date.slice(5); });
    bars("chart-visits", days, [
      {label: T.visited, data: data.deals_per_day.map(function (d) { return d.visited; }), backgroundColor: "#7bd500"},
      {label: T.noShow, data: data.deals_per_day.map(function (d) { return d.no_show; }), backgroundColor: "#ff5752"},
      {label: T.cancelled, data: data.deals_per_day.map(function (d) { return d.cancelled; }), backgroundColor: "#c2c6ca"}],
      {scales: {x: {stacked: true}, y: {stacked: true}}});
    bars("chart-revenue", days,
         [{label: T.revenue, data: data.deals_per_day.map(function (d) { return d.revenue; }),
           backgroundColor: "#39a8ef"}], {plugins: {legend: {display: false}}});
  }

  function forecastNote(series) {
    var bt = series.backtest;
    if (!bt || bt.mape === null) { return T.noBacktest; }
    return T.backtest + percent(bt.mape) + T.hits + bt.interval_hits;
  }

  function forecastChart(id, series, color, band) {
    var weeks = series.weeks;
    draw(id, {
      type: "line",
      data: {labels: weeks.map(function (w) { return w.from.slice(5); }),
             datasets: [
               {label: T.low, data: weeks.map(function (w) { return w.low; }),
                borderColor: "#c2c6ca", borderDash: [4, 4], pointRadius: 0, fill: false},
               {label: T.band, data: weeks.map(function (w) { return w.high; }),
                borderColor: "#c2c6ca", borderDash: [4, 4], pointRadius: 0,
                backgroundColor: band, fill: "-1"},
               {label: T.forecast, data: weeks.map(function (w) { return w.value; }),
                borderColor: color, backgroundColor: color, fill: false}]},
      options: {plugins: {legend: {labels: {filter: function (item) { return item.datasetIndex > 0; }}}},
                scales: {y: {beginAtZero: true}}}
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
    parts.forEach(function (part) {
      var note = document.getElementById(part.note);
      var canvas = document.getElementById(part.canvas);
      if (!result.available) {
        note.textContent = T.missing + result.missing_days + T.missingOf + (result.history_days + result.missing_days);
        canvas.hidden = true;
        return;
      }
      canvas.hidden = false;
      note.textContent = forecastNote(result[part.key]);
      forecastChart(part.canvas, result[part.key], part.color, part.band);
    });
    root.dataset.forecast = result.available ? "shown" : "hidden";
  }

  function renderImport(progress) {
    var box = document.getElementById("import");
    if (progress.status === "not_started") { box.hidden = true; return; }
    box.hidden = false;
    document.getElementById("import-bar").value = progress.share || 0;
    var text = progress.rows_done + " / " + progress.rows_total;
    if (progress.status === "done") {
      text = T.importDone + ": " + progress.rows_done;
    } else if (progress.eta_seconds !== null) {
      text += ", " + T.importLeft + Math.ceil(progress.eta_seconds) + T.sec;
    }
    document.getElementById("import-text").textContent = text;
    root.dataset.import = progress.status;
    clearTimeout(importTimer);
    if (progress.status === "running") {
      importTimer = setTimeout(loadImport, 5000);
    }
  }

  function loadImport() {
    api("/kpi/import").then(renderImport).catch(fail);
  }

  function query() {
    var period = document.getElementById("period").value;
    if (period === "custom") {
      var from = document.getElementById("from").value, to = document.getElementById("to").value;
      return from && to ? "from=" + from + "&to=" + to : null;
    }
    return "period=" + encodeURIComponent(period);
  }

  function load() {
    var q = query();
    if (!q) { return; }
    lastQuery = q;
    api("/kpi?" + q).then(function (data) {
      document.getElementById("error").hidden = true;
      renderResponse(data);
      renderFunnel(data);
      root.dataset.loaded = "true";
    }).catch(fail);
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
  }

  function saveSettings(event) {
    event.preventDefault();
    var form = event.target;
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
        document.getElementById("mapping-status").textContent = T.saved;
        load();
      }).catch(fail);
  }

  var spendChannels = [];

  function spendError(err, form) {
    var box = document.getElementById("spend-error");
    var message = err.message;
    if (err.field && T.spendErrors[err.field]) {
      message = T.spendErrors[err.field]
        .replace("{value}", form ? form.channel.value.trim() : "")
        .replace("{list}", spendChannels.join(", "));
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
    var list = document.getElementById("spend-channels");
    list.textContent = "";
    spendChannels.forEach(function (name) {
      var option = document.createElement("option");
      option.value = name;
      list.appendChild(option);
    });
    var tbody = document.querySelector("#spend-table tbody");
    tbody.textContent = "";
    body.items.forEach(function (item) {
      var row = document.createElement("tr");
      row.dataset.month = item.month;
      row.dataset.channel = item.channel;
      [item.month, item.channel, money(item.amount)].forEach(function (text, index) {
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
    putSpend({month: form.month.value.trim(), channel: form.channel.value.trim(),
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
    if (!custom) { load(); }
  });
  document.getElementById("apply-range").addEventListener("click", load);
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
