// aiops dashboard: live updates and nothing else. Every page works without this script.
// The page names its event stream on <body data-live-stream>; each element with
// data-fragment="<url>" is fetched again from the server and replaced when an event arrives.
(function () {
  "use strict";
  // A chat account's link carries its one-time code in the fragment: into the form it goes,
  // and out of the address bar.
  var code = document.getElementById("link-code");
  if (code && window.location.hash.length > 1) {
    code.value = window.location.hash.slice(1);
    window.history.replaceState(null, "", window.location.pathname);
  }
  var stream = document.body.getAttribute("data-live-stream");
  if (!stream || !window.EventSource) { return; }
  var pending = null;
  function refresh() {
    pending = null;
    var parts = document.querySelectorAll("[data-fragment]");
    Array.prototype.forEach.call(parts, function (element) {
      // A form someone is filling in is left alone.
      if (element.contains(document.activeElement) && document.activeElement.tagName !== "BODY") { return; }
      fetch(element.getAttribute("data-fragment"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null || !element.parentNode) { return; }
          var template = document.createElement("template");
          template.innerHTML = html.trim();
          var replacement = template.content.firstElementChild;
          if (replacement) { element.replaceWith(replacement); }
        })
        .catch(function () {});
    });
  }
  var source = new EventSource(stream, { withCredentials: true });
  source.addEventListener("change", function () {
    if (pending === null) { pending = window.setTimeout(refresh, 150); }
  });
})();
