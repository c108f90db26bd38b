// SLA settings page: reads /api/v1/settings with the signed token the page was
// rendered with, writes it back with the version it read (a stale version
// gets 409) and shows the server's messages next to the fields they name.
(function () {
  "use strict";

  var root = document.getElementById("settings");
  var token = root.dataset.apiToken;
  var apiUrl = root.dataset.apiUrl;
  var previewUrl = root.dataset.previewUrl;
  var texts = JSON.parse(document.getElementById("texts").textContent);
  var tagLabels = JSON.parse(document.getElementById("tag-labels").textContent);
  var capped = document.getElementById("effective").dataset.capped.split(",");
  var state = {
    version: null, presets: {}, users: [], defaults: {}, country: null, otherChannels: []
  };

  function $(id) { return document.getElementById(id); }

  function request(method, url, body) {
    var options = {method: method, headers: {"Authorization": "Bearer " + token}};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().then(function (data) {
        return {status: response.status, ok: response.ok, data: data};
      });
    });
  }

  // Intervals as text: "09:00-13:00, 14:00-21:00" <-> [["09:00","13:00"], ...]

  function hoursToText(hours) {
    return (hours || []).map(function (pair) { return pair[0] + "-" + pair[1]; }).join(", ");
  }

  function textToHours(text) {
    return text.split(",").map(function (part) { return part.trim(); })
      .filter(function (part) { return part; })
      .map(function (part) {
        var pieces = part.split(/\s*[-–]\s*/);
        return [pieces[0] || "", pieces[1] || ""];
      });
  }

  function customToText(custom) {
    return Object.keys(custom || {}).sort().map(function (day) {
      var hours = custom[day];
      return day + " " + (hours.length ? hoursToText(hours) : texts.closed);
    }).join("\n");
  }

  function textToCustom(text) {
    var custom = {};
    text.split("\n").forEach(function (line) {
      line = line.trim();
      if (!line) { return; }
      var space = line.indexOf(" ");
      var day = space < 0 ? line : line.slice(0, space);
      var rest = space < 0 ? "" : line.slice(space + 1).trim();
      custom[day] = (!rest || rest === texts.closed) ? [] : textToHours(rest);
    });
    return custom;
  }

  // Users

  function fillUserSelect(select, selected, withAuto) {
    select.innerHTML = "";
    if (withAuto) {
      var auto = document.createElement("option");
      auto.value = "";
      auto.textContent = select.dataset.auto;
      select.appendChild(auto);
    }
    var known = false;
    state.users.forEach(function (user) {
      var option = document.createElement("option");
      option.value = String(user.id);
      option.textContent = user.name + (user.position ? " — " + user.position : "");
      known = known || user.id === selected;
      select.appendChild(option);
    });
    if (selected && !known) {
      var other = document.createElement("option");
      other.value = String(selected);
      other.textContent = "#" + selected;
      select.appendChild(other);
    }
    select.value = selected ? String(selected) : "";
  }

  // Ladder and schedules

  function addLevel(level) {
    var row = $("level-row").content.firstElementChild.cloneNode(true);
    row.querySelector(".level-code").value = level.code || "";
    row.querySelector(".level-ratio").value = level.at_ratio || "";
    row.querySelector(".level-action").value = level.action || "warn_responsible";
    row.querySelector(".remove").addEventListener("click", function () {
      row.remove();
      numberRows();
    });
    $("ladder").appendChild(row);
    numberRows();
  }

  function numberRows() {
    Array.prototype.forEach.call($("ladder").children, function (row, index) {
      row.querySelector(".level-code").dataset.field = "policy.ladder." + index + ".code";
      row.querySelector(".level-ratio").dataset.field = "policy.ladder." + index + ".at_ratio";
      row.querySelector(".level-action").dataset.field = "policy.ladder." + index + ".action";
      row.dataset.field = "policy.ladder." + index;
    });
  }

  function addSchedule(userId, weekly) {
    var block = $("schedule-block").content.firstElementChild.cloneNode(true);
    var select = block.querySelector(".schedule-user");
    fillUserSelect(select, userId ? Number(userId) : null, false);
    block.querySelectorAll(".shift").forEach(function (input) {
      input.value = hoursToText((weekly || {})[input.dataset.day]);
    });
    function label() {
      block.dataset.field = "manager_schedules." + select.value;
      block.querySelectorAll(".shift").forEach(function (input) {
        input.dataset.field = block.dataset.field + "." + input.dataset.day;
      });
    }
    select.addEventListener("change", label);
    label();
    block.querySelector(".remove").addEventListener("click", function () { block.remove(); });
    $("schedules").appendChild(block);
  }

  // Targets in effect: the urgent and complaint targets are capped at the
  // general one, as the server does (SlaPolicy.effective_intent_seconds).

  function showEffective() {
    var list = $("effective-list");
    var general = number("human-minutes");
    list.innerHTML = "";
    if (general === null || !(general > 0)) { return; }
    function add(label, minutes, note) {
      var item = document.createElement("li");
      item.textContent = label + ": " + minutes + " " + texts.min;
      if (note) {
        var mark = document.createElement("span");
        mark.className = "capped";
        mark.textContent = " (" + note + ")";
        item.appendChild(mark);
      }
      list.appendChild(item);
    }
    add(texts.effective_default, general, "");
    document.querySelectorAll(".intent").forEach(function (input) {
      if (input.value.trim() === "") { return; }
      var own = Number(input.value);
      var cut = capped.indexOf(input.dataset.tag) >= 0 && own > general;
      add(tagLabels[input.dataset.tag] || input.dataset.tag, cut ? general : own,
          cut ? texts.capped_note : "");
    });
  }

  // Form <-> settings

  function fillPolicy(policy) {
    $("bot-seconds").value = policy.bot_seconds;
    var channels = policy.bot_channels || [];
    var listed = [];
    document.querySelectorAll(".bot-channel").forEach(function (input) {
      input.checked = channels.indexOf(input.value) >= 0;
      listed.push(input.value);
    });
    // Channels the page has no checkbox for (a portal's own lead sources) are
    // kept as they are.
    state.otherChannels = channels.filter(function (code) { return listed.indexOf(code) < 0; });
    $("human-minutes").value = Math.round(policy.human_seconds / 60);
    document.querySelectorAll(".intent").forEach(function (input) {
      var seconds = policy.intent_human_seconds[input.dataset.tag];
      input.value = seconds ? Math.round(seconds / 60) : "";
    });
    $("spam-clock").checked = !!policy.spam_has_clock;
    $("fresh-clock").checked = !!policy.fresh_clock_on_reassign;
    $("warn-ratio").value = policy.warn_ratio;
    $("ladder").innerHTML = "";
    policy.ladder.forEach(addLevel);
    showEffective();
  }

  function fill(body) {
    var settings = body.settings;
    state.version = body.version;
    state.presets = body.presets;
    state.users = body.users;
    state.defaults = body.defaults;
    $("users-warning").hidden = body.users_loaded;

    $("tz").value = settings.calendar.tz;
    state.country = settings.calendar.country;
    $("country").checked = !!settings.calendar.country;
    document.querySelectorAll(".weekly").forEach(function (input) {
      input.value = hoursToText(settings.calendar.weekly[input.dataset.day]);
    });
    $("custom-dates").value = customToText(settings.calendar.custom_dates);
    $("segment").value = settings.segment;
    fillPolicy(settings.policy);
    fillUserSelect($("senior"), settings.senior_user_id, true);
    fillUserSelect($("owner"), settings.owner_user_id, true);
    $("schedules").innerHTML = "";
    Object.keys(settings.manager_schedules || {}).forEach(function (userId) {
      addSchedule(userId, settings.manager_schedules[userId]);
    });
    fitFrame();
  }

  function number(id) {
    var value = $(id).value.trim();
    return value === "" ? null : Number(value);
  }

  function collect() {
    var weekly = {};
    document.querySelectorAll(".weekly").forEach(function (input) {
      var hours = textToHours(input.value);
      if (hours.length) { weekly[input.dataset.day] = hours; }
    });
    var intents = {};
    document.querySelectorAll(".intent").forEach(function (input) {
      if (input.value.trim() !== "") {
        intents[input.dataset.tag] = Math.round(Number(input.value) * 60);
      }
    });
    var ladder = Array.prototype.map.call($("ladder").children, function (row) {
      return {
        code: row.querySelector(".level-code").value.trim(),
        at_ratio: Number(row.querySelector(".level-ratio").value),
        action: row.querySelector(".level-action").value
      };
    });
    var schedules = {};
    document.querySelectorAll("#schedules .schedule").forEach(function (block) {
      var shifts = {};
      block.querySelectorAll(".shift").forEach(function (input) {
        var hours = textToHours(input.value);
        if (hours.length) { shifts[input.dataset.day] = hours; }
      });
      schedules[block.querySelector(".schedule-user").value] = shifts;
    });
    var human = number("human-minutes");
    var botChannels = state.otherChannels.slice();
    document.querySelectorAll(".bot-channel").forEach(function (input) {
      if (input.checked) { botChannels.push(input.value); }
    });
    return {
      segment: $("segment").value,
      calendar: {
        tz: $("tz").value.trim(),
        country: $("country").checked ? (state.country || "RU") : null,
        weekly: weekly,
        custom_dates: textToCustom($("custom-dates").value)
      },
      policy: {
        bot_seconds: number("bot-seconds"),
        human_seconds: human === null ? null : Math.round(human * 60),
        intent_human_seconds: intents,
        spam_has_clock: $("spam-clock").checked,
        fresh_clock_on_reassign: $("fresh-clock").checked,
        warn_ratio: number("warn-ratio"),
        ladder: ladder,
        bot_channels: botChannels
      },
      senior_user_id: $("senior").value ? Number($("senior").value) : null,
      owner_user_id: $("owner").value ? Number($("owner").value) : null,
      manager_schedules: schedules
    };
  }

  // Messages

  function clearErrors() {
    document.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
    document.querySelectorAll(".invalid").forEach(function (el) { el.classList.remove("invalid"); });
    $("error").hidden = true;
    $("status").textContent = "";
    $("status").className = "";
  }

  function showErrors(errors) {
    Object.keys(errors).forEach(function (path) {
      var target = null;
      var parts = path.split(".");
      while (parts.length && !target) {
        target = root.querySelector('[data-field="' + parts.join(".") + '"]');
        parts.pop();
      }
      var note = document.createElement("small");
      note.className = "field-error";
      note.textContent = errors[path];
      if (target) {
        target.classList.add("invalid");
        target.insertAdjacentElement("afterend", note);
      } else {
        $("error").hidden = false;
        $("error").textContent += path + ": " + errors[path] + " ";
      }
    });
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = false;
    fitFrame();
  }

  // Fits the portal's frame to the page (static/frame.js); a no-op outside Bitrix24.
  function fitFrame() {
    if (window.OtklikFrame) { window.OtklikFrame.fit(); }
  }

  // Actions

  function load() {
    request("GET", apiUrl).then(function (result) {
      if (!result.ok) { throw new Error(result.data.error || result.status); }
      fill(result.data);
      root.dataset.loaded = "true";
    }).catch(function (err) { showError(texts.load_failed + err.message); });
  }

  function save() {
    clearErrors();
    request("PUT", apiUrl, {version: state.version, settings: collect()}).then(function (result) {
      if (result.ok) {
        fill(result.data);
        $("status").textContent = texts.saved;
        $("status").className = "ok";
        return;
      }
      showError(result.data.error || String(result.status));
      if (result.data.errors) { showErrors(result.data.errors); }
    }).catch(function (err) { showError(err.message); });
  }

  function preview() {
    clearErrors();
    var query = "?created=" + encodeURIComponent($("preview-created").value);
    if ($("preview-tag").value) { query += "&tag=" + encodeURIComponent($("preview-tag").value); }
    request("GET", previewUrl + query).then(function (result) {
      if (!result.ok) {
        showError(result.data.error || String(result.status));
        if (result.data.errors) { showErrors(result.data.errors); }
        return;
      }
      $("preview-text").textContent = result.data.text;
      var list = $("preview-ladder");
      list.innerHTML = "";
      result.data.ladder.forEach(function (step) {
        var item = document.createElement("li");
        item.textContent = step.text;
        list.appendChild(item);
      });
    }).catch(function (err) { showError(err.message); });
  }

  $("apply-preset").addEventListener("click", function () {
    var preset = state.presets[$("segment").value];
    if (preset) { fillPolicy(preset.policy); }
  });
  $("add-level").addEventListener("click", function () {
    addLevel({code: "", at_ratio: 1, action: "task_senior"});
  });
  $("add-schedule").addEventListener("click", function () { addSchedule(null, {}); });
  $("human-minutes").addEventListener("input", showEffective);
  document.querySelectorAll(".intent").forEach(function (input) {
    input.addEventListener("input", showEffective);
  });
  $("save").addEventListener("click", save);
  $("preview").addEventListener("click", preview);
  load();
}());
