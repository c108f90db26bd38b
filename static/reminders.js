// Reminders page: reads and saves /api/v1/reminders/settings with the signed
// token the page was rendered with, previews each template as the owner
// types (with the appointment picked in the list, else with sample data),
// and lists recent appointments with delivery status. The main element gets
// data-loaded="true" once the settings and the list are shown.
(function () {
  "use strict";

  var root = document.getElementById("reminders");
  var token = root.dataset.apiToken;
  var pending = 2;
  var english = root.dataset.lang === "en";
  var locale = english ? "en-GB" : "ru-RU";

  // Picks the text for the page's language: Russian unless it is English.
  function localText(ru, en) { return english ? en : ru; }

  // Labels for the status and channel codes that b24app/reminders/models.py and
  // dispatch.py store. The page shows an unknown code as it is.
  var APPOINTMENT_STATUSES = {
    booked: localText("записан", "booked"),
    confirmed: localText("подтвердил", "confirmed"),
    cancelled: localText("запись отменена", "cancelled"),
    visited: localText("пришёл", "visited"),
    no_show: localText("не пришёл", "no-show")
  };
  var CHANNELS = {
    openline: localText("открытая линия", "open line"),
    telegram: "Telegram",
    sms: "SMS",
    email: "e-mail"
  };
  var DELIVERY_STATUSES = {
    sending: localText("отправляется", "sending"),
    sent: localText("отправлено", "sent"),
    delivered: localText("доставлено", "delivered"),
    failed: localText("не отправлено", "failed"),
    unknown: localText("неизвестно, дошло ли", "unknown"),
    deferred: localText("отложено", "deferred"),
    skipped: localText("пропущено", "skipped")
  };

  function label(names, code) {
    return Object.prototype.hasOwnProperty.call(names, code) ? names[code] : code;
  }

  function loaded() {
    pending -= 1;
    if (pending === 0) {
      previewAll();
      root.dataset.loaded = "true";
      fitFrame();
    }
  }

  // Fits the portal's frame to the page (static/frame.js); a no-op outside Bitrix24.
  function fitFrame() {
    if (window.OtklikFrame) { window.OtklikFrame.fit(); }
  }

  function $(id) { return document.getElementById(id); }

  function request(method, url, body) {
    var options = {method: method, headers: {"Authorization": "Bearer " + token}};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().then(function (data) {
        return {ok: response.ok, data: data};
      });
    });
  }

  var KINDS = ["confirm", "remind"];
  var KIND_NAMES = {confirm: "подтверждение", remind: "напоминание", thanks: "спасибо"};
  // Steps the form does not show (a second reminder, say) are kept as they are.
  var extraSteps = [];

  function showStep(kind, step) {
    var minutes = step ? step.minutes_before : null;
    var inHours = minutes !== null && minutes % 60 === 0;
    $(kind + "-unit").value = inHours ? "60" : "1";
    $(kind + "-before").value = minutes === null ? "" : (inHours ? minutes / 60 : minutes);
  }

  function fillSchedule(schedule) {
    var seen = {};
    extraSteps = [];
    (schedule || []).forEach(function (step) {
      if (KINDS.indexOf(step.kind) >= 0 && !seen[step.kind]) {
        seen[step.kind] = step;
      } else {
        extraSteps.push(step);
      }
    });
    KINDS.forEach(function (kind) { showStep(kind, seen[kind]); });
    var note = $("extra-steps");
    note.hidden = extraSteps.length === 0;
    note.textContent = extraSteps.length ? "Ещё шаги (сохраняются как есть): " +
      extraSteps.map(function (step) {
        return (KIND_NAMES[step.kind] || step.kind) + " за " + step.minutes_before + " мин";
      }).join(", ") : "";
  }

  function fill(data) {
    var s = data.settings;
    $("enabled").checked = !!s.enabled;
    fillSchedule(s.schedule);
    $("quiet-start").value = s.quiet_hours.start;
    $("quiet-end").value = s.quiet_hours.end;
    showQuietOff();
    $("address").value = s.address || "";
    document.querySelectorAll("[data-template]").forEach(function (area) {
      area.value = s.templates[area.dataset.template] || "";
    });
    var notes = $("notes");
    notes.textContent = "";
    (data.notes || []).forEach(function (text) {
      var item = document.createElement("li");
      item.textContent = text;
      notes.appendChild(item);
    });
  }

  // The server treats equal start and end as no quiet hours at all.
  function showQuietOff() {
    var start = $("quiet-start").value;
    $("quiet-off").hidden = !start || start !== $("quiet-end").value;
  }

  function preview(area) {
    var kind = area.dataset.template;
    var body = {text: area.value};
    var chosen = $("preview-appointment").value;
    if (chosen) { body.appointment_id = parseInt(chosen, 10); }
    // Only the response to the latest request of this text area is shown.
    var sequence = (parseInt(area.dataset.sequence || "0", 10) + 1).toString();
    area.dataset.sequence = sequence;
    request("POST", root.dataset.previewUrl, body).then(function (r) {
      if (area.dataset.sequence !== sequence) { return; }
      var check = r.data.check || {errors: [], warnings: []};
      document.querySelector('[data-error="templates.' + kind + '"]').textContent =
        check.errors.join(" ");
      document.querySelector('[data-warning="' + kind + '"]').textContent =
        check.warnings.join(" ");
      document.querySelector('[data-preview="' + kind + '"]').textContent =
        r.data.text ? "Так увидит клиент: " + r.data.text : "";
    });
  }

  function previewAll() {
    document.querySelectorAll("[data-template]").forEach(preview);
  }

  function collect() {
    var schedule = [];
    KINDS.forEach(function (kind) {
      var raw = $(kind + "-before").value.trim();
      if (!raw) { return; }
      // A bad number goes to the server as it is, so its message is shown.
      var minutes = Number(raw) * parseInt($(kind + "-unit").value, 10);
      schedule.push({kind: kind, minutes_before: isFinite(minutes) ? Math.round(minutes) : raw});
    });
    schedule = schedule.concat(extraSteps);
    var templates = {};
    document.querySelectorAll("[data-template]").forEach(function (area) {
      if (area.value.trim()) { templates[area.dataset.template] = area.value; }
    });
    return {
      enabled: $("enabled").checked,
      schedule: schedule,
      quiet_hours: {start: $("quiet-start").value, end: $("quiet-end").value},
      address: $("address").value,
      templates: templates
    };
  }

  function save() {
    $("status").textContent = "";
    document.querySelectorAll("[data-error]").forEach(function (el) { el.textContent = ""; });
    request("PUT", root.dataset.apiUrl, collect()).then(function (r) {
      if (r.ok) {
        $("error").hidden = true;
        $("error").textContent = "";
        $("status").textContent = "Сохранено";
        return;
      }
      Object.keys(r.data.errors || {}).forEach(function (field) {
        var el = document.querySelector('[data-error="' + field + '"]');
        if (el) { el.textContent = r.data.errors[field]; }
      });
      $("error").hidden = false;
      $("error").textContent = r.data.error || "Не сохранено";
    });
  }

  function deliveryText(d) {
    var text = label(CHANNELS, d.channel) + ": " + label(DELIVERY_STATUSES, d.status);
    if (d.note) { return text + " — " + d.note; }
    return text + (d.error ? " (" + d.error + ")" : "");
  }

  // Formats times in the portal's zone (the preview uses it too), without
  // seconds, and with the year only when it is not the current one.
  function visitTime(iso) {
    var when = new Date(iso);
    var options = {day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23"};
    try {
      options.timeZone = root.dataset.timezone || undefined;
      var year = new Intl.DateTimeFormat("en", {year: "numeric", timeZone: options.timeZone});
      if (year.format(when) !== year.format(new Date())) { options.year = "numeric"; }
      return new Intl.DateTimeFormat(locale, options).format(when);
    } catch (err) {
      // An unknown zone name: the browser's own zone is better than nothing.
      delete options.timeZone;
      return new Intl.DateTimeFormat(locale, options).format(when);
    }
  }

  function appointmentLabel(a) {
    return visitTime(a.starts_at) + " " + (a.service || "");
  }

  function listAppointments() {
    request("GET", root.dataset.appointmentsUrl).then(function (r) {
      var body = $("appointments");
      var picker = $("preview-appointment");
      var previous = picker.value;
      body.textContent = "";
      picker.length = 1;
      (r.data.appointments || []).forEach(function (a) {
        var row = document.createElement("tr");
        row.dataset.appointment = a.id;
        var sent = a.deliveries.map(deliveryText).join("; ");
        var status = label(APPOINTMENT_STATUSES, a.status);
        [appointmentLabel(a), status, sent || "—"].forEach(function (text) {
          var cell = document.createElement("td");
          cell.textContent = text;
          row.appendChild(cell);
        });
        body.appendChild(row);
        picker.appendChild(new Option(appointmentLabel(a), String(a.id)));
      });
      // The nearest real appointment shows what a client will actually read.
      if (previous) {
        picker.value = previous;
      } else if (picker.length > 1) {
        picker.selectedIndex = 1;
      }
      loaded();
    });
  }

  // A share as a percentage in the page's locale: "40,0 %" in Russian.
  function percent(value) {
    if (value === null || value === undefined) { return "—"; }
    var number = (value * 100).toLocaleString(locale, {
      minimumFractionDigits: 1, maximumFractionDigits: 1
    });
    return number + (english ? "%" : "\u00a0%");
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) { td.className = className; }
    row.appendChild(td);
  }

  // The p-value, in words: how likely a difference this large is by chance alone.
  function pValueCell(row, value) {
    if (value === undefined || value === null) {
      cell(row, "", "num");
      return;
    }
    var pText = value.toLocaleString(locale, {maximumFractionDigits: 4});
    cell(row, percent(value), "num");
    row.lastChild.title = localText(
      "Вероятность случайной разницы с контролем: " + percent(value) + " (p = " + pText + ")",
      "Chance the difference from the control is random: " + percent(value) +
        " (p = " + pText + ")");
  }

  var STATUS_NAMES = {running: "идёт", finished: "завершён", stopped: "остановлен"};

  function experimentBlock(report) {
    var box = document.createElement("div");
    box.className = "experiment";
    box.dataset.experiment = report.id;
    var title = document.createElement("h3");
    title.textContent = report.name + " — " + (STATUS_NAMES[report.status] || report.status) +
      (report.promoted ? ", в работе вариант " + report.promoted : "");
    box.appendChild(title);

    var metricName = report.metric === "no_show" ? "неявки" : "подтверждения";
    var table = document.createElement("table");
    var head = document.createElement("tr");
    ["Вариант", "Визитов", "С исходом", "Неявки", "Подтверждения",
      metricName + ": 95 % ДИ",
      localText("Вероятность случайной разницы", "Chance the difference is random")
    ].forEach(function (text) {
      var th = document.createElement("th");
      th.textContent = text;
      head.appendChild(th);
    });
    table.appendChild(head);
    report.variants.forEach(function (v) {
      var row = document.createElement("tr");
      row.dataset.variant = v.code;
      cell(row, v.code + (v.control ? " (контроль)" : ""));
      cell(row, String(v.appointments), "num");
      cell(row, String(v.n), "num");
      cell(row, percent(v.no_show_rate), "num");
      cell(row, percent(v.confirmation_rate), "num");
      cell(row, v.ci95[0] === null ? "—" : percent(v.ci95[0]) + " … " + percent(v.ci95[1]), "num");
      pValueCell(row, v.p_value);
      table.appendChild(row);
    });
    box.appendChild(table);

    var verdict = document.createElement("p");
    verdict.className = "verdict verdict-" + report.verdict;
    verdict.textContent = report.message;
    box.appendChild(verdict);
    if (report.verdict === "winner" && report.status === "running") {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "promote";
      button.textContent = "Сделать вариант " + report.winner + " основным";
      button.addEventListener("click", function () {
        button.disabled = true;
        request("POST", root.dataset.experimentsUrl + "/" + report.id + "/promote")
          .then(function (r) {
            if (!r.ok) {
              verdict.textContent = r.data.error || "Не получилось";
              button.disabled = false;
              return;
            }
            listExperiments();
          });
      });
      box.appendChild(button);
    }
    return box;
  }

  function listExperiments() {
    var list = $("experiments");
    request("GET", root.dataset.experimentsUrl).then(function (r) {
      var experiments = r.data.experiments || [];
      if (!experiments.length) {
        list.textContent = "Тестов пока нет.";
        return null;
      }
      return Promise.all(experiments.map(function (e) {
        return request("GET", root.dataset.experimentsUrl + "/" + e.id);
      })).then(function (reports) {
        list.textContent = "";
        reports.forEach(function (report) {
          if (report.ok) { list.appendChild(experimentBlock(report.data)); }
        });
      });
    }).then(function () {
      list.dataset.loaded = "true";
      fitFrame();
    });
  }

  document.querySelectorAll("[data-template]").forEach(function (area) {
    var timer = null;
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { preview(area); }, 300);
    });
  });
  $("save").addEventListener("click", save);
  $("quiet-start").addEventListener("input", showQuietOff);
  $("quiet-end").addEventListener("input", showQuietOff);
  $("preview-appointment").addEventListener("change", previewAll);
  request("GET", root.dataset.apiUrl).then(function (r) {
    if (!r.ok) {
      $("error").hidden = false;
      $("error").textContent = r.data.error;
      fitFrame();
      return;
    }
    fill(r.data);
    loaded();
  });
  listAppointments();
  listExperiments();
})();
