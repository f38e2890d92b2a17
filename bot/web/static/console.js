// GradGuide console: the few live parts, without a build step or a library.
// [data-poll]: re-fetch the element's inner HTML from that URL every data-interval seconds.
// select[data-fill]: choosing a canned reply puts its text into the reply box.
// form[data-confirm]: ask before submitting (removing a document).
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var seconds = parseFloat(el.getAttribute("data-interval") || "5");
    function tick() {
      fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) { if (html !== null) { el.innerHTML = html; } })
        .catch(function () { /* offline for a moment: try again next tick */ })
        .then(function () { window.setTimeout(tick, seconds * 1000); });
    }
    window.setTimeout(tick, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("select[data-fill]").forEach(function (select) {
      select.addEventListener("change", function () {
        var box = document.getElementById(select.getAttribute("data-fill"));
        var option = select.options[select.selectedIndex];
        if (box && option && option.getAttribute("data-text")) {
          box.value = option.getAttribute("data-text");
        }
      });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  });
})();
