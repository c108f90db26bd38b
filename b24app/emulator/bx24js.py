"""JavaScript of the BX24 library stub and of the portal side of its bridge.

A real portal serves the BX24 library to the app's iframe, and the library
talks to the portal page with ``postMessage``. The emulator does the same.
``STUB_JS`` is served at ``/_emulator/ui/bx24.js`` for the app page to load
(point the app's BX24 script URL there). ``HOST_BRIDGE_JS`` runs in the
emulator's own page around the iframe and carries out the commands.

The stub has ``init``/``ready``, ``isReady``, ``installFinish``,
``resizeWindow``, ``fitWindow``, ``getScrollSize``, ``getAuth``,
``getDomain``, ``getLang``, ``isAdmin`` and ``placement.info``.
``callMethod`` throws, because the app calls REST from its server.
"""

from __future__ import annotations

# Tag on every message, so each side ignores messages of other scripts.
CHANNEL = "b24-emulator"

STUB_JS = """\
(function () {
  "use strict";
  if (window.BX24) {
    return;
  }
  var CHANNEL = "__CHANNEL__";
  var host = window.parent;
  var frameData = null;
  var initCallbacks = [];
  var pending = {};
  var nextId = 1;

  function send(command, params, callback) {
    var id = null;
    if (callback) {
      id = nextId++;
      pending[id] = callback;
    }
    host.postMessage(
      { channel: CHANNEL, command: command, params: params || {}, id: id },
      "*"
    );
  }

  window.addEventListener("message", function (event) {
    var message = event.data;
    if (event.source !== host || !message || message.channel !== CHANNEL) {
      return;
    }
    var callback = pending[message.id];
    delete pending[message.id];
    if (callback) {
      callback(message.result);
    }
  });

  function runInit() {
    var callbacks = initCallbacks;
    initCallbacks = [];
    callbacks.forEach(function (callback) {
      callback();
    });
  }

  // The content size, not the viewport size, so a frame can shrink as well.
  function getScrollSize() {
    var root = document.documentElement;
    var body = document.body || root;
    return {
      scrollWidth: Math.max(root.offsetWidth, body.scrollWidth),
      scrollHeight: Math.max(root.offsetHeight, body.scrollHeight)
    };
  }

  // Width "100%" fills the available width. Other values go through
  // parseInt, and a value that is not a number becomes 100 pixels.
  // A height is used only when parseInt gives more than 0.
  function resizeWindow(width, height, callback) {
    var frameWidth = width === "100%" ? "100%" : parseInt(width, 10);
    if (frameWidth !== "100%" && isNaN(frameWidth)) {
      frameWidth = 100;
    }
    var frameHeight = parseInt(height, 10);
    if (!(frameHeight > 0)) {
      frameHeight = null;
    }
    send("resizeWindow", { width: frameWidth, height: frameHeight });
    if (callback) {
      setTimeout(callback, 0);
    }
  }

  window.BX24 = {
    init: function (callback) {
      initCallbacks.push(callback);
      if (frameData) {
        runInit();
      }
    },
    ready: function (callback) {
      window.BX24.init(callback);
    },
    isReady: function () {
      return frameData !== null;
    },
    installFinish: function () {
      send("installFinish");
    },
    resizeWindow: resizeWindow,
    // The docs describe fitWindow as a change of the frame height only.
    fitWindow: function (callback) {
      resizeWindow("100%", getScrollSize().scrollHeight, callback);
    },
    getScrollSize: getScrollSize,
    getAuth: function () {
      if (!frameData) {
        return false;
      }
      return {
        access_token: frameData.AUTH_ID,
        refresh_token: frameData.REFRESH_ID,
        expires_in: Number(frameData.AUTH_EXPIRES),
        domain: frameData.DOMAIN,
        member_id: frameData.member_id
      };
    },
    getDomain: function () {
      return frameData ? frameData.DOMAIN : null;
    },
    getLang: function () {
      return frameData ? frameData.LANG : null;
    },
    isAdmin: function () {
      return Boolean(frameData && frameData.IS_ADMIN);
    },
    placement: {
      info: function () {
        return frameData
          ? { placement: frameData.PLACEMENT, options: frameData.OPTIONS }
          : null;
      }
    },
    callMethod: function (method) {
      throw new Error(
        "BX24.callMethod(" + method + ") is not emulated; " +
          "call REST from the app server."
      );
    }
  };

  send("getInitData", {}, function (data) {
    frameData = data;
    runInit();
  });
})();
""".replace("__CHANNEL__", CHANNEL)

# Runs in the emulator's page and reads its settings from the JSON in #frame-data.
HOST_BRIDGE_JS = """\
(function () {
  "use strict";
  var CHANNEL = "__CHANNEL__";
  var frame = document.getElementById("app-frame");
  var data = JSON.parse(document.getElementById("frame-data").textContent);
  var status = document.getElementById("frame-status");

  function resize(params) {
    if (params.width === "100%") {
      frame.style.width = "";
    } else if (typeof params.width === "number") {
      frame.style.width = params.width + "px";
    }
    if (typeof params.height === "number" && params.height > 0) {
      frame.style.height = params.height + "px";
    }
    frame.dataset.resized = String(Number(frame.dataset.resized || 0) + 1);
  }

  // Only the installer page can finish the install; elsewhere the call
  // has no effect, as on a real portal.
  function finishInstall() {
    if (!data.INSTALL || document.body.dataset.installed) {
      return;
    }
    document.body.dataset.installed = "pending";
    fetch(data.FINISH_URL, { method: "POST" })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            throw new Error(body.error_description || response.statusText);
          }
          document.body.dataset.installed = "true";
          status.textContent = "Установка завершена, открываем приложение…";
          window.location.assign(data.MAIN_PAGE_URL);
        });
      })
      .catch(function (error) {
        document.body.dataset.installed = "failed";
        status.textContent = "Установка не завершена: " + error.message;
      });
  }

  window.addEventListener("message", function (event) {
    var message = event.data;
    if (event.source !== frame.contentWindow || !message) {
      return;
    }
    if (message.channel !== CHANNEL) {
      return;
    }
    var result = null;
    if (message.command === "getInitData") {
      result = data.FRAME;
    } else if (message.command === "resizeWindow") {
      resize(message.params || {});
    } else if (message.command === "installFinish") {
      finishInstall();
    }
    if (message.id !== null && message.id !== undefined) {
      event.source.postMessage(
        { channel: CHANNEL, id: message.id, result: result },
        event.origin
      );
    }
  });
})();
""".replace("__CHANNEL__", CHANNEL)
