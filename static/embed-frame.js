// embed-frame.js runs in the iframe variant of the widget
// (/embed/online-users). It tells the framing page the widget's height, so
// the frame can fit it, and the cards clicked, as the presence:user-click
// event embed.js re-dispatches there (docs/EMBEDDING.md). Only origins in
// --allowed-origins may frame the page (frame-ancestors), so they are the
// only ones that can receive these messages.
(function () {
  "use strict";
  if (window.parent === window) return;
  function post(m) { window.parent.postMessage(m, "*"); }
  var last = 0;
  function size() {
    var h = Math.ceil(document.body.getBoundingClientRect().height);
    if (h !== last) {
      last = h;
      post({ presence: "resize", height: h });
    }
  }
  function start() {
    if (typeof ResizeObserver === "function") new ResizeObserver(size).observe(document.body);
    size();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  document.addEventListener("presence:user-click", function (e) {
    e.preventDefault(); // the framing page decides what a click does
    post({ presence: "user-click", id: e.detail.id, username: e.detail.username });
  });
})();
