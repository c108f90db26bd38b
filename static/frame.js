// Fits the Bitrix24 frame to the page. Pages call OtklikFrame.fit() after
// each render, and a ResizeObserver catches other changes of the content
// height. Once the BX24 library is ready, BX24.fitWindow() sets the frame
// height to the content height.
//
// BX24.js comes from this script tag's data-bx24-src. It is loaded with
// async, and only when the page is inside a frame, because the library throws
// "Unable to initialize Bitrix24 JS library!" outside one (BX24.init docs).
// Without BX24 (not configured, blocked, failed to load) fit() does nothing
// and the frame keeps its height. <html data-bx24> records the load state:
// loading, ready, failed or absent.
(function () {
  "use strict";

  var script = document.currentScript;
  var source = script ? script.dataset.bx24Src : "";
  var root = document.documentElement;
  // The first fit runs as soon as BX24 is ready, in case the page rendered
  // before this script or the library arrived.
  var requested = true;
  var scheduled = false;

  function library() {
    var bx24 = window.BX24;
    if (bx24 && typeof bx24.init === "function" && typeof bx24.fitWindow === "function") {
      return bx24;
    }
    return null;
  }

  function run() {
    scheduled = false;
    var bx24 = library();
    if (!requested || !bx24) { return; }
    requested = false;
    try {
      bx24.init(function () { bx24.fitWindow(); });
    } catch (error) {
      console.warn("Otklik: BX24.fitWindow failed, the frame keeps its height:", error);
    }
  }

  // Calls made during one render are merged into one resize after layout.
  function fit() {
    requested = true;
    if (!scheduled) {
      scheduled = true;
      window.setTimeout(run, 0);
    }
  }

  function load() {
    if (library()) {
      root.dataset.bx24 = "ready";
      return;
    }
    if (!source || window.parent === window) {
      root.dataset.bx24 = "absent";
      return;
    }
    root.dataset.bx24 = "loading";
    var tag = document.createElement("script");
    tag.src = source;
    tag.async = true;
    tag.addEventListener("load", function () {
      root.dataset.bx24 = library() ? "ready" : "failed";
      run();
    });
    tag.addEventListener("error", function () { root.dataset.bx24 = "failed"; });
    document.head.appendChild(tag);
  }

  function watch() {
    if (typeof window.ResizeObserver !== "function" || !document.body) { return; }
    var lastHeight = -1;
    new window.ResizeObserver(function (entries) {
      var height = Math.round(entries[0].contentRect.height);
      if (height !== lastHeight) {
        lastHeight = height;
        fit();
      }
    }).observe(document.body);
  }

  window.OtklikFrame = {fit: fit};
  load();
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", watch);
  } else {
    watch();
  }
}());
