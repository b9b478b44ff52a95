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
// 3. Shared stream: the tabs of one browser share one widget event stream
//    (a browser allows six HTTP/1.1 connections per host, and every open
//    stream holds one). See "Shared stream" below.
(function () {
  "use strict";

  // ---- Shared stream ----------------------------------------------------
  //
  // The htmx SSE extension opens its streams with htmx.createEventSource(url).
  // We replace it: for each stream URL, one tab of the browser (the leader)
  // holds the real EventSource and relays its state and every event, by name,
  // over a BroadcastChannel to the other tabs (followers), whose stand-in
  // objects behave like an EventSource for the extension. So a profile with
  // ten tabs costs the server one stream, and the seventh tab still loads.
  //
  // Election needs no Web Locks (missing outside secure contexts) and no
  // SharedWorker (missing on Chrome for Android): a lease in localStorage,
  // {id, t}, renewed by the leader every LEASE_RENEW ms. A follower that
  // finds it older than LEASE_STALE asks over the channel whether the leader
  // is still there (a background tab's timers may be throttled to once a
  // minute, its message handlers are not) and claims the lease only if
  // nobody answers; a leader that goes away (pagehide, freeze, close) says
  // "bye" and removes the lease, so another tab takes over at once. Writes
  // race only in a claim: a claimer waits CLAIM_CONFIRM ms and leads only if
  // the lease still names it; if two lead anyway, the smaller id keeps the
  // stream. Every (re)connection of the real stream makes every tab fire
  // onopen, so each widget refetches its list and misses nothing.
  //
  // Without BroadcastChannel or usable localStorage every tab opens its own
  // EventSource, as before. The channel and the lease are named after the
  // full stream URL (an embed carries its token in it) and live in the host
  // page's origin.
  var LEASE_RENEW = 500;
  var LEASE_STALE = 1500;
  var PING_WAIT = 250;
  var CLAIM_CONFIRM = 150;
  var REOPEN_MIN = 1000;
  var REOPEN_MAX = 30000;
  var live = []; // this page's shared sources, for __presenceStreams

  function nativeSource(url) {
    return new EventSource(url, { withCredentials: true });
  }

  function usableStorage() {
    try {
      var s = window.localStorage, k = "presence-probe";
      s.setItem(k, "1");
      s.removeItem(k);
      return s;
    } catch (e) {
      return null; // blocked storage, private modes that throw
    }
  }

  // Only the widget's streams are shared: a host page's own SSE streams
  // (docs/EMBEDDING.md) keep an EventSource per tab, as the extension does.
  var SHARED = /\/widgets\/online-users\/stream(\?|$)/;

  function createEventSource(url) {
    if (!SHARED.test(url)) return nativeSource(url);
    var store = typeof BroadcastChannel === "function" ? usableStorage() : null;
    if (!store) return nativeSource(url);
    try {
      return sharedSource(url, store);
    } catch (e) {
      return nativeSource(url);
    }
  }

  function sharedSource(url, store) {
    var key = "presence-sse:" + url;
    var id = Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
    var src = {
      url: url,
      withCredentials: true,
      CONNECTING: 0, OPEN: 1, CLOSED: 2,
      readyState: 0,
      onopen: null, onerror: null, onmessage: null,
      addEventListener: addListener,
      removeEventListener: removeListener,
      close: close
    };
    var listeners = {};          // event name → [fn], this page's
    var names = { message: 1 };  // event names this page wants
    var wanted = { message: 1 }; // leader: names any tab wants
    var chan = null, leader = false, es = null, closed = false, suspended = false;
    var timer = null, pingTimer = null, claimTimer = null, reopenTimer = null;
    var attempt = 0;
    var heard = 0;    // when a leader last spoke
    var gone = null;  // the leader that said bye

    function now() { return Date.now(); }
    function readLease() {
      try {
        var v = JSON.parse(store.getItem(key));
        return v && v.id ? v : null;
      } catch (e) {
        return null;
      }
    }
    function writeLease() {
      try { store.setItem(key, JSON.stringify({ id: id, t: now() })); } catch (e) { /* full or blocked */ }
    }
    function dropLease() {
      var l = readLease();
      if (l && l.id === id) {
        try { store.removeItem(key); } catch (e) { /* blocked */ }
      }
    }
    function post(m) {
      m.from = id;
      if (chan) {
        try { chan.postMessage(m); } catch (e) { /* closed */ }
      }
    }
    function keys(o) {
      var a = [];
      for (var k in o) if (Object.prototype.hasOwnProperty.call(o, k)) a.push(k);
      return a;
    }

    // ---- this page's listeners, like an EventSource's
    function addListener(name, fn) {
      if (typeof fn !== "function") return;
      (listeners[name] = listeners[name] || []).push(fn);
      if (name === "open" || name === "error" || names[name]) return;
      names[name] = 1;
      if (leader) want([name]);
      else post({ t: "listen", names: [name] });
    }
    function removeListener(name, fn) {
      var a = listeners[name];
      if (!a) return;
      for (var i = 0; i < a.length; i++) {
        if (a[i] === fn) { a.splice(i, 1); return; }
      }
    }
    function emit(ev) {
      var h = src["on" + ev.type];
      if (typeof h === "function") h.call(src, ev);
      var a = (listeners[ev.type] || []).slice(); // a listener may remove itself
      for (var i = 0; i < a.length; i++) a[i].call(src, ev);
    }
    function deliver(name, data, lastId) {
      emit(new MessageEvent(name, { data: data, lastEventId: lastId || "", origin: location.origin }));
    }
    function opened() {
      src.readyState = 1;
      emit(new Event("open"));
    }
    function failed() {
      src.readyState = 0;
      emit(new Event("error"));
    }

    // ---- leader: the real EventSource
    function want(list) {
      for (var i = 0; i < list.length; i++) {
        var name = String(list[i]);
        if (wanted[name]) continue;
        wanted[name] = 1;
        if (es) relay(es, name);
      }
    }
    function relay(source, name) {
      source.addEventListener(name, function (e) {
        if (source !== es) return;
        post({ t: "ev", name: name, data: e.data, lastId: e.lastEventId });
        deliver(name, e.data, e.lastEventId);
      });
    }
    function openNative() {
      reopenTimer = null;
      if (!leader || closed || suspended) return;
      var source;
      try {
        source = nativeSource(url);
      } catch (e) {
        reopen();
        return;
      }
      es = source;
      source.onopen = function () {
        if (source !== es) return;
        attempt = 0;
        post({ t: "open" });
        opened();
      };
      source.onerror = function () {
        if (source !== es) return;
        post({ t: "error" });
        failed();
        // CLOSED: the server refused (401, 503, …); EventSource gives up,
        // we do not. CONNECTING: it reconnects by itself.
        if (source.readyState === 2) {
          closeNative();
          reopen();
        }
      };
      for (var name in wanted) relay(source, name);
    }
    function reopen() {
      if (reopenTimer || closed || suspended) return;
      var base = Math.min(REOPEN_MAX, REOPEN_MIN * Math.pow(2, attempt));
      attempt = Math.min(attempt + 1, 16);
      reopenTimer = setTimeout(openNative, base / 2 + Math.random() * base);
    }
    function closeNative() {
      if (es) {
        var s = es;
        es = null;
        s.close();
      }
    }
    function lead() {
      leader = true;
      gone = null;
      clearInterval(timer);
      writeLease();
      post({ t: "leader" });
      want(keys(names)); // this page's own events, then the others' (hello)
      openNative();
      timer = setInterval(function () { writeLease(); }, LEASE_RENEW);
    }
    function stepDown() {
      leader = false;
      clearInterval(timer);
      clearTimeout(reopenTimer);
      reopenTimer = null;
      closeNative();
      follow();
    }

    // ---- follower
    function follow() {
      clearInterval(timer);
      timer = setInterval(check, LEASE_RENEW);
      post({ t: "hello", names: keys(names) });
      check();
    }
    function check() {
      if (leader || closed || suspended || pingTimer || claimTimer) return;
      if (now() - heard <= LEASE_STALE) return;
      var l = readLease();
      if (l && l.id === gone) l = null;
      if (l && now() - l.t <= LEASE_STALE) return;
      if (l && l.id !== id) {
        // Stale, but the holder may only be a throttled background tab.
        var asked = now();
        post({ t: "ping" });
        pingTimer = setTimeout(function () {
          pingTimer = null;
          if (heard < asked) claim(); // no answer
        }, PING_WAIT);
        return;
      }
      claim();
    }
    function claim() {
      if (leader || closed || suspended) return;
      var since = now();
      writeLease();
      claimTimer = setTimeout(function () {
        claimTimer = null;
        var l = readLease();
        if (closed || suspended || leader) return;
        if (l && l.id === id && heard < since) lead();
      }, CLAIM_CONFIRM);
    }

    function onMessage(e) {
      var m = e.data;
      if (!m || typeof m !== "object" || m.from === id || closed || suspended) return;
      switch (m.t) {
        case "hello":
        case "listen":
          if (leader) {
            want(m.names || []);
            if (m.t === "hello") post({ t: "state", open: !!es && es.readyState === 1 });
          }
          return;
        case "ping":
          if (leader) {
            writeLease();
            post({ t: "pong" });
          }
          return;
        case "leader":
          if (leader) {
            if (m.from < id) stepDown();
            else post({ t: "leader" }); // the other one steps down
            return;
          }
          heard = now();
          post({ t: "hello", names: keys(names) });
          return;
        case "pong":
          if (!leader) heard = now();
          return;
        case "state":
          if (leader) return;
          heard = now();
          if (m.open && src.readyState !== 1) opened();
          return;
        case "open":
          if (leader) return;
          heard = now();
          opened(); // a new connection: every widget resyncs
          return;
        case "error":
          if (leader) return;
          heard = now();
          failed();
          return;
        case "ev":
          if (leader) return;
          heard = now();
          if (src.readyState !== 1) opened();
          deliver(String(m.name), m.data, m.lastId);
          return;
        case "bye":
          if (leader) return;
          heard = 0;
          gone = m.from;
          check();
          return;
      }
    }

    // ---- joining and leaving
    function join() {
      suspended = false;
      heard = 0;
      chan = new BroadcastChannel(key);
      chan.onmessage = onMessage;
      follow();
    }
    // leave gives the stream up: on pagehide and freeze (the page may never
    // run again, or come back from the bfcache) and on close.
    function leave() {
      suspended = true;
      clearInterval(timer);
      clearTimeout(pingTimer);
      clearTimeout(claimTimer);
      clearTimeout(reopenTimer);
      timer = pingTimer = claimTimer = reopenTimer = null;
      if (leader) {
        leader = false;
        closeNative();
        dropLease();
        post({ t: "bye" });
      }
      if (chan) {
        chan.close();
        chan = null;
      }
      if (!closed) src.readyState = 0;
    }
    function onHide() { if (!closed) leave(); }
    function onShow(e) { if (!closed && suspended && (e.type === "resume" || e.persisted)) join(); }
    function close() {
      if (closed) return;
      closed = true;
      leave();
      src.readyState = 2;
      window.removeEventListener("pagehide", onHide);
      window.removeEventListener("pageshow", onShow);
      document.removeEventListener("freeze", onHide);
      document.removeEventListener("resume", onShow);
      var i = live.indexOf(info);
      if (i >= 0) live.splice(i, 1);
    }
    function info() { return { url: url, leader: leader, readyState: src.readyState }; }

    window.addEventListener("pagehide", onHide);
    window.addEventListener("pageshow", onShow);
    document.addEventListener("freeze", onHide);
    document.addEventListener("resume", onShow);
    live.push(info);
    join();
    return src;
  }

  // For tests and curious people: which streams this page has, and whether
  // it holds them.
  window.__presenceStreams = function () {
    return live.map(function (f) { return f(); });
  };

  // The SSE extension keeps a createEventSource that is already set, and
  // looks it up on every connect, so this works before or after it loads.
  if (window.htmx) window.htmx.createEventSource = createEventSource;

  // ---- Keep-alive -------------------------------------------------------
  var PING_EVERY = 30000;
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 30000;

  // TAB names this tab to the server (?tab= on its socket, X-Presence-Tab
  // on htmx requests) so that "Your devices" can mark "this tab". It is kept
  // across reloads of the tab (sessionStorage) and authorises nothing.
  var TAB = (function () {
    var t = null;
    try { t = window.sessionStorage.getItem("presence-tab"); } catch (e) { /* blocked */ }
    if (!t || !/^[A-Za-z0-9_-]{1,40}$/.test(t)) {
      t = Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
      try { window.sessionStorage.setItem("presence-tab", t); } catch (e) { /* blocked */ }
    }
    return t;
  })();
  document.addEventListener("htmx:configRequest", function (e) {
    var u = e.detail && e.detail.path;
    // Only on Presence's own pages (a host page names its Presence server
    // in the attribute), and only to this origin.
    if (document.body.getAttribute("data-presence-keepalive") !== "") return;
    if (u && u.charAt(0) === "/" && u.charAt(1) !== "/") e.detail.headers["X-Presence-Tab"] = TAB;
  });

  function keepAlive() {
    var ws = null, pingTimer = null, retryTimer = null, attempt = 0, stopped = false;

    // data-presence-keepalive="https://presence.example.com" points a host
    // page at another Presence server; empty means this origin.
    function url() {
      var base = document.body.getAttribute("data-presence-keepalive") || location.origin;
      // events=0: this socket only keeps the user online; the widget gets
      // its updates over SSE, so status events would be wasted N² traffic.
      return base.replace(/^http/, "ws").replace(/\/$/, "") + "/ws/user-status/?events=0&tab=" + encodeURIComponent(TAB);
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
        // "Your devices" refreshes its list when this tab's socket is up.
        document.body.dispatchEvent(new CustomEvent("presence:connected", { bubbles: true }));
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

  // A list fetched (on load, on every stream (re)connect, every 30 s) while
  // the stream pushes a whole list may come back older than that push: drop
  // it then. Nothing is lost: a push is the whole list, and every change
  // after it comes as another push.
  function isList(el) { return el && el.hasAttribute && el.hasAttribute("data-presence-list"); }
  document.addEventListener("htmx:sseMessage", function (e) {
    if (isList(e.target)) e.target.__presencePushes = (e.target.__presencePushes || 0) + 1;
  });
  document.addEventListener("htmx:beforeRequest", function (e) {
    var el = e.detail && e.detail.elt;
    if (isList(el)) el.__presenceAsked = el.__presencePushes || 0;
  });
  document.addEventListener("htmx:beforeSwap", function (e) {
    var el = e.detail.elt, xhr = e.detail.xhr;
    if (isList(el) && xhr && xhr.status < 400 && (el.__presencePushes || 0) !== el.__presenceAsked) e.detail.shouldSwap = false;
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
