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

  function loaded() {
    pending -= 1;
    if (pending === 0) {
      previewAll();
      root.dataset.loaded = "true";
    }
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

  function hours(schedule, kind) {
    var step = (schedule || []).filter(function (s) { return s.kind === kind; })[0];
    return step ? Math.round(step.minutes_before / 60) : "";
  }

  function fill(data) {
    var s = data.settings;
    $("enabled").checked = !!s.enabled;
    $("confirm-hours").value = hours(s.schedule, "confirm");
    $("remind-hours").value = hours(s.schedule, "remind");
    $("quiet-start").value = s.quiet_hours.start;
    $("quiet-end").value = s.quiet_hours.end;
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
    [["confirm", "confirm-hours"], ["remind", "remind-hours"]].forEach(function (p) {
      var value = parseInt($(p[1]).value, 10);
      if (value > 0) { schedule.push({kind: p[0], minutes_before: value * 60}); }
    });
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
    var text = d.channel + ": " + d.status;
    if (d.note) { return text + " — " + d.note; }
    return text + (d.error ? " (" + d.error + ")" : "");
  }

  function appointmentLabel(a) {
    return new Date(a.starts_at).toLocaleString("ru-RU") + " " + (a.service || "");
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
        [appointmentLabel(a), a.status, sent || "—"].forEach(function (text) {
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

  function listExperiments() {
    request("GET", root.dataset.experimentsUrl).then(function (r) {
      var list = $("experiments");
      list.textContent = "";
      (r.data.experiments || []).forEach(function (e) {
        var item = document.createElement("li");
        item.textContent = e.name + " — " + e.status + (e.winner ? ", победил " + e.winner : "");
        list.appendChild(item);
      });
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
  $("preview-appointment").addEventListener("change", previewAll);
  request("GET", root.dataset.apiUrl).then(function (r) {
    if (!r.ok) {
      $("error").hidden = false;
      $("error").textContent = r.data.error;
      return;
    }
    fill(r.data);
    loaded();
  });
  listAppointments();
  listExperiments();
})();
