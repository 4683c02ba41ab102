/* liqsite levels: the pair chart's layer switches (templates/maps/levels/_layers.html).
   Each switch shows or hides the Bokeh renderers tagged "levels:<layer>" (maps/levels/charts.py);
   the choice is kept in localStorage, so it survives reloads and window changes. */
(function () {
  "use strict";

  var KEY = "liqsite.layers";
  var BOXES = "[data-layers-for] input[name=layer]";

  function saved() {
    try { return JSON.parse(window.localStorage.getItem(KEY) || "{}") || {}; } catch (e) { return {}; }
  }

  function save(state) {
    try { window.localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }

  function tagged(layer) {
    var found = [];
    if (!window.Bokeh || !window.Bokeh.documents) return found;
    window.Bokeh.documents.forEach(function (doc) {
      doc.all_models.forEach(function (model) {
        if (model.tags && model.tags.indexOf("levels:" + layer) >= 0) found.push(model);
      });
    });
    return found;
  }

  function apply() {
    document.querySelectorAll(BOXES).forEach(function (box) {
      tagged(box.value).forEach(function (model) { model.visible = box.checked; });
    });
  }

  function restore() {
    var state = saved();
    document.querySelectorAll(BOXES).forEach(function (box) {
      if (Object.prototype.hasOwnProperty.call(state, box.value)) box.checked = !!state[box.value];
    });
  }

  /* The charts arrive after the page (liqsite.js embeds them and marks the canvas is-ready). */
  var observer = new MutationObserver(function (records) {
    records.forEach(function (record) {
      if (record.target.classList.contains("is-ready")) apply();
    });
  });

  function watch() {
    restore();
    document.querySelectorAll(".charts__canvas").forEach(function (canvas) {
      observer.observe(canvas, { attributes: true, attributeFilter: ["class"] });
      if (canvas.classList.contains("is-ready")) apply();
    });
  }

  document.addEventListener("change", function (event) {
    if (!event.target.matches || !event.target.matches(BOXES)) return;
    var state = saved();
    state[event.target.value] = event.target.checked;
    save(state);
    apply();
  });
  document.addEventListener("DOMContentLoaded", watch);
  document.addEventListener("htmx:afterSettle", watch);
})();
