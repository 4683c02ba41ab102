/* liqsite: copy links, local times, focus after htmx swaps, table hints, the clusters view.
   Hand-written, no build step. The charts live in charts.js. */
(function () {
  "use strict";

  /* Copy the canonical URL of the current view; fall back to a selected text field. */
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var field = document.createElement("textarea");
      field.value = text;
      field.setAttribute("readonly", "");
      field.style.position = "fixed";
      field.style.opacity = "0";
      document.body.appendChild(field);
      field.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(field);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-url]");
    if (!button) return;
    var url = button.getAttribute("data-copy-url");
    var label = button.querySelector(".copy-link__text");
    copyText(url).then(function () {
      button.classList.add("is-copied");
      if (label) label.textContent = "Copied";
    }, function () {
      window.prompt("Copy this link:", url);
    }).finally(function () {
      setTimeout(function () {
        button.classList.remove("is-copied");
        if (label) label.textContent = "Copy link";
      }, 1800);
    });
  });

  /* Times: when the server does not know the visitor's zone yet (data-time-zone=""), write the
     page's times in the browser's zone and remember the zone for the next pages. */
  var FORMATS = {
    long: { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short" },
    short: { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
    date: { month: "short", day: "numeric" }
  };

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function localTimes(root) {
    if (document.body.getAttribute("data-time-zone")) return;
    var zone = browserZone();
    if (!zone) return;
    root.querySelectorAll("time[data-local][datetime]").forEach(function (el) {
      var format = FORMATS[el.getAttribute("data-local")] || FORMATS.long;
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment)) return;
      el.textContent = new Intl.DateTimeFormat("en-US", Object.assign({ timeZone: zone }, format))
        .format(moment).replace(",", "");
    });
    var label = document.querySelector("[data-time-zone-label]");
    if (label) label.textContent = zone;
  }

  function rememberZone() {
    var zone = browserZone();
    if (!zone || document.cookie.indexOf("liqsite_tz=" + encodeURIComponent(zone)) >= 0) return;
    document.cookie = "liqsite_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
  }

  /* htmx replaces the control that had focus: give focus back to its twin in the new content. */
  var focusedId = null;
  document.addEventListener("htmx:beforeSwap", function () {
    var active = document.activeElement;
    focusedId = active && active.id && active !== document.body ? active.id : null;
  });

  function restoreFocus() {
    if (!focusedId) return;
    var again = document.getElementById(focusedId);
    focusedId = null;
    if (again && document.activeElement !== again) again.focus({ preventScroll: true });
  }

  /* A table wider than its box says it scrolls sideways. */
  function tableHints(root) {
    root.querySelectorAll(".table-wrap").forEach(function (wrap) {
      var next = wrap.nextElementSibling;
      if (!next || !next.classList.contains("scroll-hint")) {
        next = document.createElement("p");
        next.className = "scroll-hint";
        next.setAttribute("aria-hidden", "true");
        next.textContent = "Scroll sideways for more columns →";
        wrap.parentNode.insertBefore(next, wrap.nextSibling);
      }
      var overflowing = wrap.scrollWidth > wrap.clientWidth + 2;
      wrap.classList.toggle("is-overflowing", overflowing);
      if (overflowing && !wrap.hasAttribute("tabindex")) {
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", "Table, scrolls sideways");
      }
    });
  }

  /* The clusters card: price ladder or by size. */
  function clusterViews(root) {
    root.querySelectorAll(".ladder__fill[data-width]").forEach(function (bar) {
      bar.style.width = Math.round(parseFloat(bar.getAttribute("data-width")) * 100) + "%";
    });
    var wanted = null;
    try { wanted = window.localStorage.getItem("liqsite.clusters"); } catch (e) { wanted = null; }
    if (wanted) showClusters(root, wanted);
  }

  function showClusters(root, view) {
    root.querySelectorAll("[data-cluster-view]").forEach(function (button) {
      var on = button.getAttribute("data-cluster-view") === view;
      button.classList.toggle("is-current", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
    root.querySelectorAll("[data-cluster-panel]").forEach(function (panel) {
      panel.hidden = panel.getAttribute("data-cluster-panel") !== view;
    });
    tableHints(root);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-cluster-view]");
    if (!button) return;
    var view = button.getAttribute("data-cluster-view");
    try { window.localStorage.setItem("liqsite.clusters", view); } catch (e) { /* private mode */ }
    showClusters(document, view);
  });

  function enhance(root) {
    localTimes(root);
    clusterViews(root);
    tableHints(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    rememberZone();
    enhance(document);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    enhance(event.target && event.target.querySelectorAll ? event.target : document);
    restoreFocus();
  });
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { tableHints(document); }, 150);
  });
})();
