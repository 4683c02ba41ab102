/* liqsite: embed the Bokeh charts, copy links. Hand-written, no build step. */
(function () {
  "use strict";

  /* Fetch each chart container's JSON (data-charts-url) and embed it with BokehJS. */
  function embedCharts(root) {
    if (!window.Bokeh) return;
    root.querySelectorAll("[data-charts-url]").forEach(function (el) {
      var url = el.getAttribute("data-charts-url");
      if (el.getAttribute("data-embedded") === url) return;
      el.setAttribute("data-embedded", url);
      el.setAttribute("aria-busy", "true");
      fetch(url, { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (item) {
          el.replaceChildren();
          return window.Bokeh.embed.embed_item(item, el.id);
        })
        .then(function (views) {
          el._bokehViews = views;
          el.removeAttribute("aria-busy");
          el.classList.add("is-ready");
        })
        .catch(function (error) {
          el.removeAttribute("aria-busy");
          el.classList.add("is-failed");
          var status = el.querySelector(".charts__status") || el.appendChild(document.createElement("p"));
          status.className = "charts__status";
          status.textContent = "The charts could not load (" + error.message + "). Reload to try again.";
        });
    });
  }

  function releaseCharts(el) {
    if (el && el._bokehViews && typeof el._bokehViews.clear === "function") {
      el._bokehViews.clear();
      el._bokehViews = null;
    }
  }

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

  document.addEventListener("DOMContentLoaded", function () { embedCharts(document); });
  document.addEventListener("htmx:beforeCleanupElement", function (event) { releaseCharts(event.target); });
  document.addEventListener("htmx:afterSettle", function () { embedCharts(document); });
})();
