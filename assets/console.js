// admind console: each <time datetime> in the reader's own time zone and
// language. The page already shows it in UTC (all it shows without
// script); this only rewrites the text, on load and after each htmx swap.
(function () {
  "use strict";
  function localise(root) {
    var lang = document.documentElement.lang || "en";
    var withTime = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
    var dayOnly = new Intl.DateTimeFormat(lang, { dateStyle: "medium" });
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) { return; }
      var day = el.hasAttribute("data-day");
      el.textContent = day ? dayOnly.format(at) : withTime.format(at);
      if (!day && zone) { el.title = zone; }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSettle", function (e) { localise(e.target || document); });
})();
