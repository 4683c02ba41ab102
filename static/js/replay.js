/* liqsite replay slider: show the moment the slider points at while it moves. */
(function () {
  "use strict";
  if (window.liqsiteReplay) return;
  window.liqsiteReplay = true;

  function label(ms) {
    var d = new Date(Number(ms));
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) +
      "T" + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + "Z";
  }

  document.addEventListener("input", function (event) {
    var slider = event.target.closest("[data-replay-output]");
    if (!slider) return;
    var output = document.getElementById(slider.getAttribute("data-replay-output"));
    if (output) output.textContent = label(slider.value);
  });
})();
