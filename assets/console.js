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
  // Focus stays where the user acted: the form posted (found again by its
  // action and its rank among forms of that action) gets the focus back
  // once the answer is on the page, instead of the top of the page.
  var KEY = "admind.focus";
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    var action = form.getAttribute("action") || "";
    var same = Array.prototype.filter.call(document.forms, function (f) {
      return (f.getAttribute("action") || "") === action;
    });
    try {
      sessionStorage.setItem(KEY, JSON.stringify({ action: action, rank: same.indexOf(form) }));
    } catch (err) { /* storage off: the page keeps its default focus */ }
  }, true);
  function restoreFocus() {
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(KEY) || "null"); sessionStorage.removeItem(KEY); } catch (err) { return; }
    if (!saved) { return; }
    var alert = document.querySelector("[role=alert]");
    var same = Array.prototype.filter.call(document.forms, function (f) {
      return (f.getAttribute("action") || "") === saved.action;
    });
    var form = same[Math.min(saved.rank, same.length - 1)];
    var target = null;
    if (alert && (!form || !form.contains(alert))) {
      // A refusal: its message beside the control it concerns (the
      // page's own message moves next to the form), and read first.
      if (alert.id === "page-alert" && form && form.parentNode) {
        form.parentNode.insertBefore(alert, form);
      }
      alert.setAttribute("tabindex", "-1");
      target = alert;
    } else if (form) {
      target = form.querySelector("button, input:not([type=hidden]), select, textarea");
    }
    if (target) {
      target.focus({ preventScroll: true });
      target.scrollIntoView({ block: "center" });
    }
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); restoreFocus(); });
  document.addEventListener("htmx:afterSettle", function (e) { localise(e.target || document); restoreFocus(); });
})();
