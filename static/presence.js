// presence.js: the browser side of Presence. No build step, no framework.
//
// 1. Keep-alive: on pages whose <body> has data-presence-keepalive, hold a
//    WebSocket to /ws/user-status/ so the server knows this tab is open.
//    Ping every 30 s; reconnect forever with capped exponential backoff and
//    jitter; close cleanly on logout and when the page goes away.
// 2. Widget: apply per-viewer differences to the shared list fragment the
//    server pushes to everyone (hide the viewer, cap at data-max, empty
//    state, absolute links for embeds), keep list deltas in step (versions),
//    show the reconnecting and error states, and dispatch a cancelable
//    `presence:user-click` event.
(function () {
  "use strict";

  // ---- Keep-alive -------------------------------------------------------
  var PING_EVERY = 30000;
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 30000;

  function keepAlive() {
    var ws = null, pingTimer = null, retryTimer = null, attempt = 0, stopped = false;

    // data-presence-keepalive="https://presence.example.com" points a host
    // page at another Presence server; empty means this origin.
    function url() {
      var base = document.body.getAttribute("data-presence-keepalive") || location.origin;
      // events=0: this socket only keeps the user online; the widget gets
      // its updates over SSE, so status events would be wasted N² traffic.
      return base.replace(/^http/, "ws").replace(/\/$/, "") + "/ws/user-status/?events=0";
    }

    function connect() {
      if (stopped) return;
      try {
        ws = new WebSocket(url());
      } catch (e) {
        schedule();
        return;
      }
      ws.onopen = function () {
        attempt = 0;
        pingTimer = setInterval(function () {
          if (ws && ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
        }, PING_EVERY);
      };
      ws.onclose = function () {
        clearInterval(pingTimer);
        ws = null;
        schedule();
      };
      ws.onerror = function () { /* onclose follows and reconnects */ };
    }

    // schedule retries forever: min(max, min*2^n), with ±50% jitter so a
    // restarted server is not hit by every tab at the same instant.
    function schedule() {
      if (stopped || retryTimer) return;
      var base = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, attempt));
      var delay = base / 2 + Math.random() * base;
      attempt = Math.min(attempt + 1, 16);
      retryTimer = setTimeout(function () { retryTimer = null; connect(); }, delay);
    }

    function stop() {
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      if (ws) {
        ws.onclose = null;
        try { ws.close(1000, "bye"); } catch (e) { /* already closed */ }
        ws = null;
      }
    }

    // Back from the bfcache: the socket was closed on pagehide.
    window.addEventListener("pageshow", function (e) {
      if (e.persisted && stopped) { stopped = false; attempt = 0; connect(); }
    });
    window.addEventListener("pagehide", stop);
    document.addEventListener("submit", function (e) {
      if (e.target.matches && e.target.matches("[data-presence-logout]")) stop();
    });
    connect();
  }

  // ---- Widget -----------------------------------------------------------
  function widgetOf(el) {
    return el && el.closest ? el.closest("[data-presence-widget]") : null;
  }

  // apply turns the shared fragment into this viewer's view.
  function apply(root) {
    var viewer = root.getAttribute("data-viewer-id");
    var max = parseInt(root.getAttribute("data-max"), 10) || 8;
    var base = root.getAttribute("data-base-url") || "";
    var items = root.querySelectorAll("[data-presence-list] li[data-user-id]");
    var shown = 0;
    for (var i = 0; i < items.length; i++) {
      var li = items[i];
      var hide = li.getAttribute("data-user-id") === viewer || shown >= max;
      li.hidden = hide;
      if (!hide) shown++;
      var a = li.querySelector("a[data-presence-user]");
      if (a && base && a.getAttribute("href").charAt(0) === "/") a.setAttribute("href", base + a.getAttribute("href"));
    }
    var empty = root.querySelector("[data-presence-empty]");
    if (empty) empty.classList.toggle("hidden", shown > 0);
    if (root.getAttribute("data-state") !== "reconnecting") root.setAttribute("data-state", "ready");
  }

  function onSwap(e) {
    if (e.type === "htmx:sseMessage" && onDelta(e.detail)) return;
    var root = widgetOf(e.target) || widgetOf(e.detail && e.detail.elt);
    if (root && root.querySelector("[data-presence-total]")) apply(root);
  }

  // Deltas. A presence-delta event is out-of-band swaps aimed at every grid
  // on the page whose data-presence-version is the delta's "from"; htmx
  // applies them in order. Before that, a widget whose grid is at another
  // version does not apply it: behind (or from a restarted server), it
  // fetches the whole list; ahead (another widget's stream brought it, or
  // the list it fetched was newer), it ignores it. After it, the grids move
  // to "to" and each widget's view is re-applied.
  var DELTA = /data-presence-from="([^"]*)" data-presence-to="([^"]*)"/;

  function versionOf(root) {
    var grid = root && root.querySelector("[data-presence-grid]");
    return grid ? grid.getAttribute("data-presence-version") : "";
  }

  // includes reports whether a grid at version v already shows version to
  // ("<epoch>-<n>": a different epoch is a different server run).
  function includes(v, to) {
    var a = v.split("-"), b = to.split("-");
    return a[0] === b[0] && parseInt(a[1], 10) >= parseInt(b[1], 10);
  }

  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    var msg = e.detail;
    if (!msg || msg.type !== "presence-delta") return;
    var root = widgetOf(e.target);
    var m = DELTA.exec(msg.data), have = versionOf(root);
    if (m && have === m[1]) return;
    e.preventDefault();
    if (root && !(m && have && includes(have, m[2]))) {
      window.htmx.trigger(root.querySelector("[data-presence-list]"), "presence:refresh");
    }
  });

  // onDelta finishes an applied delta; false if msg is not one.
  function onDelta(msg) {
    var m = msg && msg.type === "presence-delta" && DELTA.exec(msg.data);
    if (!m) return false;
    var grids = document.querySelectorAll("[data-presence-grid]");
    for (var i = 0; i < grids.length; i++) {
      if (grids[i].getAttribute("data-presence-version") !== m[1]) continue;
      grids[i].setAttribute("data-presence-version", m[2]);
      var root = widgetOf(grids[i]);
      if (root) apply(root);
    }
    return true;
  }

  // The widget routes answer errors with a small card meant to be shown:
  // let htmx swap it in instead of ignoring the response.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr;
    if (xhr && xhr.status >= 400 && /\/widgets\/online-users(\?|$)/.test(xhr.responseURL || "")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSwap", onSwap);
  document.addEventListener("htmx:sseMessage", onSwap);
  document.addEventListener("htmx:load", function (e) {
    var root = widgetOf(e.target);
    if (root && root.querySelector("[data-presence-total]")) apply(root);
  });

  document.addEventListener("htmx:sseOpen", function (e) {
    var root = widgetOf(e.target);
    if (root && root.getAttribute("data-state") === "reconnecting") root.setAttribute("data-state", "ready");
  });
  document.addEventListener("htmx:sseError", function (e) {
    var root = widgetOf(e.target);
    if (root) root.setAttribute("data-state", "reconnecting");
  });
  function onRequestFailed(e) {
    var root = widgetOf(e.target);
    if (root && !root.querySelector("[data-presence-total]")) root.setAttribute("data-state", "error");
  }
  document.addEventListener("htmx:responseError", onRequestFailed);
  document.addEventListener("htmx:sendError", onRequestFailed);

  document.addEventListener("click", function (e) {
    var retry = e.target.closest && e.target.closest("[data-presence-retry]");
    if (retry) {
      var root = widgetOf(retry);
      root.setAttribute("data-state", "loading");
      window.htmx.trigger(root.querySelector("[data-presence-list]"), "presence:refresh");
      return;
    }
    var card = e.target.closest && e.target.closest("[data-presence-user]");
    if (!card || !widgetOf(card)) return;
    var ev = new CustomEvent("presence:user-click", {
      bubbles: true,
      cancelable: true,
      detail: { id: parseInt(card.closest("[data-user-id]").getAttribute("data-user-id"), 10), username: card.getAttribute("data-username") }
    });
    if (!card.dispatchEvent(ev)) e.preventDefault();
  });

  function start() {
    if (document.body && document.body.hasAttribute("data-presence-keepalive")) keepAlive();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
