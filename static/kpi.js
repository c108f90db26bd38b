// KPI tab: loads /api/v1/kpi with the signed token the page was rendered with
// and draws the charts. The token lives in memory only (no cookies in iframes).
(function () {
  "use strict";

  var root = document.getElementById("kpi");
  var token = root.dataset.apiToken;
  var apiUrl = root.dataset.apiUrl;
  var lang = root.dataset.lang === "en" ? "en" : "ru";
  var charts = {};

  var TEXT = {
    ru: {tags: {booking: "Запись", price: "Цена", reschedule: "Перенос", cancel: "Отмена",
                complaint: "Жалоба", question: "Вопрос", spam: "Спам", urgent: "Срочно",
                review: "Проверить"},
         leads: "Лиды", median: "Медиана, мин", p90: "90-й процентиль, мин",
         loadFailed: "Не удалось загрузить данные: "},
    en: {tags: {booking: "Booking", price: "Price", reschedule: "Reschedule", cancel: "Cancel",
                complaint: "Complaint", question: "Question", spam: "Spam", urgent: "Urgent",
                review: "Review"},
         leads: "Leads", median: "Median, min", p90: "90th percentile, min",
         loadFailed: "Could not load the data: "}
  };
  var EN_LABELS = {title: "First response to clients", period: "Period", day: "Today",
                   week: "7 days", month: "30 days", leads: "Leads",
                   median: "Median response, min", p90: "90% answered within, min",
                   answered: "Answered", within: "Within SLA", open: "Clocks running",
                   breached: "Overdue", perDay: "Leads per day", sla: "First response",
                   tagsTitle: "Client intents"};

  if (lang === "en") {
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      var key = el.getAttribute("data-i18n");
      if (EN_LABELS[key]) { el.textContent = EN_LABELS[key]; }
    });
  }

  function percent(value) {
    return value === null || value === undefined ? "—" : Math.round(value * 1000) / 10 + " %";
  }

  function show(id, value) {
    document.getElementById(id).textContent = value === null || value === undefined ? "—" : value;
  }

  function draw(id, config) {
    if (charts[id]) { charts[id].destroy(); }
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function render(data) {
    show("leads-total", data.leads_total);
    show("median", data.first_response_minutes.median);
    show("p90", data.first_response_minutes.p90);
    show("answered", percent(data.answered_share));
    show("within", percent(data.within_sla_share));
    show("open", data.open_clocks);
    show("breached", data.breached_clocks);
    var answeredCard = document.getElementById("answered").parentNode;
    answeredCard.classList.toggle("good", data.answered_share >= data.answered_target);
    answeredCard.classList.toggle("bad", data.answered_share !== null &&
                                         data.answered_share < data.answered_target);

    draw("chart-leads", {
      type: "bar",
      data: {labels: data.leads_per_day.map(function (d) { return d.date.slice(5); }),
             datasets: [{label: TEXT[lang].leads, data: data.leads_per_day.map(function (d) { return d.leads; }),
                         backgroundColor: "#2fc6f6"}]},
      options: {animation: false, plugins: {legend: {display: false}}}
    });
    draw("chart-sla", {
      type: "bar",
      data: {labels: [TEXT[lang].median, TEXT[lang].p90],
             datasets: [{data: [data.first_response_minutes.median, data.first_response_minutes.p90],
                         backgroundColor: ["#9dcf00", "#ffa900"]}]},
      options: {animation: false, plugins: {legend: {display: false}}}
    });
    var tagNames = Object.keys(data.tags);
    draw("chart-tags", {
      type: "doughnut",
      data: {labels: tagNames.map(function (t) { return TEXT[lang].tags[t] || t; }),
             datasets: [{data: tagNames.map(function (t) { return data.tags[t]; })}]},
      options: {animation: false}
    });
    root.dataset.loaded = "true";
  }

  function load() {
    var period = document.getElementById("period").value;
    var error = document.getElementById("error");
    fetch(apiUrl + "?period=" + encodeURIComponent(period), {
      headers: {"Authorization": "Bearer " + token}
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw new Error(body.error || response.status); }
        return body;
      });
    }).then(function (data) {
      error.hidden = true;
      render(data);
    }).catch(function (err) {
      error.textContent = TEXT[lang].loadFailed + err.message;
      error.hidden = false;
    });
  }

  document.getElementById("period").addEventListener("change", load);
  load();
}());
