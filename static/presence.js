// presence.js: the browser side of Presence. No build step, no framework.
//
// 1. Keep-alive: on pages whose <body> has data-presence-keepalive, hold a
//    WebSocket to /ws/user-status/ so the server knows this tab is open.
//    The server's WebSocket pings (answered by the browser) keep it open;
//    an application ping, which the server counts as activity, is sent
//    only after real interaction (input, focus, the page becoming visible,
//    or the page being opened while visible), at most one per 5 s, so an
//    idle tab goes away after --away-after. Reconnect forever with capped exponential backoff and
//    jitter; close cleanly on logout and when the page goes away.
// 2. Widget: apply per-viewer differences to the shared list fragment the
//    server pushes to everyone (hide the viewer, cap at data-max, empty
//    state, absolute links for embeds), keep list deltas in step (versions),
//    show the reconnecting and error states, and dispatch a cancelable
//    `presence:user-click` event. Friends-scoped widgets (data-scope=friends)
//    get per-user tile events instead of versioned deltas; see "Friends".
// 4. Notices: "a friend came online" toasts that arrive over the widget's
//    stream (friend-online), shown for a few seconds.
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

  // shareKey names the stream that tabs share: its URL without ?token=.
  // Every page of a host site signs its own token (embed.js), and the
  // stream's events are the same for every viewer (the shared list), so
  // tabs with different tokens share one stream, each leader opening it
  // with its own token. An embed token stays in the key: widgets of
  // different embeds never mix.
  function shareKey(url) {
    return url.replace(/([?&])token=[^&#]*&?/, "$1").replace(/[?&]$/, "");
  }

  function sharedSource(url, store) {
    var key = "presence-sse:" + shareKey(url);
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
  var PING_MIN = 5000; // at most one activity ping per 5 s
  var ACTIVITY_EVENTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart", "input", "scroll"];
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

  function timeZoneParam() {
    try {
      var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
      return tz ? "&tz=" + encodeURIComponent(tz) : "";
    } catch (e) {
      return "";
    }
  }

  // ROOM_NAME is what the server accepts as a room name (docs/PROTOCOL.md,
  // "Rooms"): 1 to 100 letters, marks, numbers, punctuation, symbols or
  // spaces, not starting or ending with a space. A name it would refuse is
  // not sent (the tab is then in no room), so the socket still connects.
  // Built at run time: a browser without Unicode property escapes would
  // refuse a regex literal, and with it this whole script.
  var ROOM_NAME = (function () {
    try {
      return new RegExp("^(?! )[\\p{L}\\p{M}\\p{N}\\p{P}\\p{S} ]{1,100}$", "u");
    } catch (e) {
      return /^(?! )[^\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]{1,100}$/;
    }
  })();
  function cleanRoom(r) {
    r = r == null ? "" : String(r);
    return ROOM_NAME.test(r) && r.charAt(r.length - 1) !== " " ? r : "";
  }

  // pageRoom is the room this page is in: <body data-presence-room> when
  // present ("" for none), else the page's path.
  function pageRoom() {
    var b = document.body;
    return cleanRoom(b && b.hasAttribute("data-presence-room") ? b.getAttribute("data-presence-room") : location.pathname);
  }

  // keepAlive holds the socket for the Presence server at base (an origin).
  // token, when given, is called at each (re)connect for the credential to
  // send as ?token= (a host JWT: embed.js and the iframe); without it the
  // session cookie is used. room, when given, is the room this page is in
  // (embed.js: data-room), else pageRoom(). It returns a function that stops
  // it for good; its .room(name) moves the tab to another room.
  function keepAlive(base, token, room) {
    var ws = null, pingTimer = null, retryTimer = null, attempt = 0, stopped = false, ended = false;
    var pending = false, lastSent = 0;
    room = room != null ? cleanRoom(room) : pageRoom();

    // activity notes a real interaction and sends it as an application
    // ping, right away or at the end of the PING_MIN window.
    function activity() {
      pending = true;
      if (pingTimer) return;
      pingTimer = setTimeout(flush, Math.max(0, lastSent + PING_MIN - Date.now()));
    }
    function flush() {
      pingTimer = null;
      if (!pending || !ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send('{"type":"ping"}');
      lastSent = Date.now();
      pending = false;
    }
    ACTIVITY_EVENTS.forEach(function (name) {
      document.addEventListener(name, activity, { capture: true, passive: true });
    });
    window.addEventListener("focus", activity);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") activity();
    });

    function url() {
      // events=0: this socket only keeps the user online; the widget gets
      // its updates over SSE, so status events would be wasted N² traffic.
      // tz: this browser's IANA time zone, for the profile's "local time";
      // tab: this tab's name, for "Your devices"; room: where this tab is,
      // for "who is here now".
      var u = base.replace(/^http/, "ws").replace(/\/$/, "") + "/ws/user-status/?events=0" + timeZoneParam() +
        "&tab=" + encodeURIComponent(TAB) + (room ? "&room=" + encodeURIComponent(room) : "");
      var t = token && token();
      return t ? u + "&token=" + encodeURIComponent(t) : u;
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
        // Opening a visible page is an interaction; reconnecting sends what
        // happened meanwhile.
        if (document.visibilityState === "visible" && (pending || lastSent === 0)) activity();
        // "Your devices" refreshes its list when this tab's socket is up.
        document.body.dispatchEvent(new CustomEvent("presence:connected", { bubbles: true }));
      };
      ws.onclose = function () {
        clearTimeout(pingTimer);
        pingTimer = null;
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
      clearTimeout(pingTimer);
      pingTimer = null;
      if (ws) {
        ws.onclose = null;
        try { ws.close(1000, "bye"); } catch (e) { /* already closed */ }
        ws = null;
      }
    }

    // Back from the bfcache: the socket was closed on pagehide.
    window.addEventListener("pageshow", function (e) {
      if (e.persisted && stopped && !ended) { stopped = false; attempt = 0; connect(); }
    });
    window.addEventListener("pagehide", stop);
    document.addEventListener("submit", function (e) {
      if (e.target.matches && e.target.matches("[data-presence-logout]")) stop();
    });
    connect();
    var end = function () { ended = true; stop(); };
    // end.room moves this tab to another room (a single-page app's
    // navigation); "" leaves. The next reconnect uses it too.
    end.room = function (name) {
      room = cleanRoom(name);
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "room", room: room }));
    };
    return end;
  }

  // For embed.js: keep a host's user online with their token.
  window.__presenceKeepAlive = keepAlive;

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
      // Uploaded avatars are paths on the Presence server, too.
      var img = li.querySelector("img[src^='/']");
      if (img && base) img.setAttribute("src", base + img.getAttribute("src"));
    }
    var scope = root.getAttribute("data-scope");
    if (scope === "friends" || scope === "room") sortFriends(root, items, scope === "room" ? viewer : null);
    var empty = root.querySelector("[data-presence-empty]");
    if (empty) empty.classList.toggle("hidden", shown > 0);
    if (root.getAttribute("data-state") !== "reconnecting") root.setAttribute("data-state", "ready");
  }

  // ---- Friends ----------------------------------------------------------
  //
  // A friends-scoped widget's list is the viewer's own. Its stream sends,
  // per change of one friend, a friends-delta (out-of-band swaps that drop
  // that friend's tile and, when they came online, add it at the top);
  // here the tiles are put back in username order and the count is the
  // number of tiles. The swaps are idempotent, so ordering needs no
  // versions; a delta that lands while the list is being fetched makes the
  // widget fetch it again afterwards, and friends-refresh (the server lost
  // track: a lagging stream) fetches it at once.
  //
  // Room widgets (data-scope=room) work the same way with room-delta events;
  // the viewer, who is in the room too, is hidden and not counted.
  function sortFriends(root, items, viewer) {
    var grid = root.querySelector("[data-presence-friends-grid], [data-presence-room-grid]");
    if (!grid) return;
    var list = Array.prototype.slice.call(items);
    var name = function (li) {
      var a = li.querySelector("[data-username]");
      return a ? a.getAttribute("data-username").toLowerCase() : "";
    };
    var sorted = list.slice().sort(function (a, b) { return name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0; });
    for (var i = 0; i < sorted.length; i++) {
      if (grid.children[i] !== sorted[i]) grid.insertBefore(sorted[i], grid.children[i] || null);
    }
    var n = 0;
    for (var j = 0; j < list.length; j++) if (viewer == null || list[j].getAttribute("data-user-id") !== viewer) n++;
    var count = root.querySelector("[data-presence-total]");
    if (count) {
      count.setAttribute("data-presence-total", String(n));
      count.textContent = n + (viewer == null ? " online" : " here");
    }
  }

  function listOf(root) { return root && root.querySelector("[data-presence-list]"); }

  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    var msg = e.detail;
    if (!msg) return;
    var root = widgetOf(e.target);
    if (msg.type === "friends-refresh") {
      e.preventDefault();
      if (root) window.htmx.trigger(listOf(root), "presence:refresh");
      return;
    }
    if (msg.type === "friends-delta" || msg.type === "room-delta") {
      var list = listOf(root);
      if (list && list.__presenceInflight) list.__presenceStale = true;
      return;
    }
    if (msg.type === "friend-online") {
      var m = /data-presence-toast-item="([^"]*)"/.exec(msg.data || "");
      if (m && seenToasts[m[1]]) { e.preventDefault(); return; }
      if (m) seenToasts[m[1]] = Date.now();
      if (!document.querySelector("[data-presence-toasts]")) {
        var box = document.createElement("div");
        box.setAttribute("data-presence-toasts", "");
        box.setAttribute("aria-live", "polite");
        box.style.cssText = "position:fixed;bottom:1rem;right:1rem;z-index:50;display:flex;flex-direction:column;align-items:flex-end;gap:.5rem;pointer-events:none";
        document.body.appendChild(box);
      }
    }
  });

  // Toasts: each shows for TOAST_MS. The same notice can come over two
  // streams of one page (two widgets): seenToasts drops the repeat.
  var TOAST_MS = 6000;
  var seenToasts = {};
  document.addEventListener("htmx:sseMessage", function (e) {
    if (!e.detail || e.detail.type !== "friend-online") return;
    var items = document.querySelectorAll("[data-presence-toast-item]");
    for (var i = 0; i < items.length; i++) {
      var t = items[i];
      if (t.__presenceTimer) continue;
      t.__presenceTimer = setTimeout(function (el) { return function () { if (el.parentNode) el.parentNode.removeChild(el); }; }(t), TOAST_MS);
    }
    var now = Date.now();
    for (var k in seenToasts) if (now - seenToasts[k] > 60000) delete seenToasts[k];
  });

  document.addEventListener("htmx:beforeRequest", function (e) {
    var el = e.detail && e.detail.elt;
    if (isList(el)) { el.__presenceInflight = true; el.__presenceStale = false; }
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var el = e.detail && e.detail.elt;
    if (!isList(el)) return;
    el.__presenceInflight = false;
    if (el.__presenceStale) {
      el.__presenceStale = false;
      setTimeout(function () { window.htmx.trigger(el, "presence:refresh"); }, 0);
    }
  });

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

  // Deltas move a grid past the version a list fetch was rendered at when
  // they arrive while it is on its way: drop such an answer, the grid
  // already shows more. (A push above is the same case for whole lists.)
  // A count pushed alone moves only the count's version
  // (data-presence-count-version): an answer at the grid's version with an
  // older count is dropped too, or it would put the older total back.
  function countVersionIn(el) { // el: a widget, a count, or a fragment
    var c = el && el.querySelector && el.querySelector("[data-presence-count-version]");
    return c ? c.getAttribute("data-presence-count-version") : "";
  }
  function olderThan(have, got) { return !!(got && have && have !== got && includes(have, got)); }
  var COUNTED = /data-presence-count-version="([^"]*)"/;
  document.addEventListener("htmx:beforeSwap", function (e) {
    var el = e.detail.elt, xhr = e.detail.xhr;
    if (!isList(el) || !xhr || xhr.status >= 400) return;
    var text = xhr.responseText || "", root = widgetOf(el), have = versionOf(root);
    var m = /data-presence-version="([^"]*)"/.exec(text), c = COUNTED.exec(text);
    if (m && olderThan(have, m[1])) e.detail.shouldSwap = false;
    else if (m && c && have === m[1] && olderThan(countVersionIn(root && root.querySelector("[data-presence-shared-count]")), c[1])) e.detail.shouldSwap = false;
  });
  // The same for a count event or a delta's count: out-of-band swaps into
  // every shared count on the page, which another widget's stream or a
  // fetch may already have overtaken.
  document.addEventListener("htmx:oobBeforeSwap", function (e) {
    var d = e.detail, t = d && d.target;
    if (t && t.hasAttribute && t.hasAttribute("data-presence-shared-count") && olderThan(countVersionIn(t), countVersionIn(d.fragment))) d.shouldSwap = false;
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
      // id: the user's public id, as WebSocket messages carry it (a string:
      // "42", a host's UUID, "local:3"); see docs/PROTOCOL.md, "User ids".
      detail: { id: card.closest("[data-user-id]").getAttribute("data-user-id"), username: card.getAttribute("data-username") }
    });
    if (!card.dispatchEvent(ev)) e.preventDefault();
  });

  // ---- Settings -----------------------------------------------------------
  // A file over the upload limit is refused before it is sent: the server
  // would refuse it too (413), but a browser cut off mid-upload shows a
  // network error instead of the reason.
  document.addEventListener("change", function (e) {
    var input = e.target;
    if (!input.matches || !input.matches("input[type=file][data-max-bytes]")) return;
    var max = parseInt(input.getAttribute("data-max-bytes"), 10);
    var f = input.files && input.files[0];
    input.setCustomValidity(f && f.size > max ? "The image is larger than " + Math.round(max / 1048576) + " MiB." : "");
    input.reportValidity();
  });

  // ---- Local time on profiles --------------------------------------------
  // <time data-presence-local-time="Europe/Paris">14:32</time> is rendered
  // by the server; keep it current while the page stays open.
  function tickLocalTimes() {
    var els = document.querySelectorAll("[data-presence-local-time]");
    for (var i = 0; i < els.length; i++) {
      try {
        els[i].textContent = new Intl.DateTimeFormat("en-GB", {
          timeZone: els[i].getAttribute("data-presence-local-time"), hour: "2-digit", minute: "2-digit", hourCycle: "h23"
        }).format(new Date());
      } catch (e) { /* a zone this browser does not know: keep the server's */ }
    }
  }

  // data-presence-keepalive="https://presence.example.com" points a host
  // page at another Presence server; empty means this origin.
  // data-presence-token (the iframe embed) sends a token instead of the
  // session cookie.
  function start() {
    if (document.querySelector("[data-presence-local-time]")) setInterval(tickLocalTimes, 30000);
    // The status menu's "today" is the end of the day where the browser is.
    var tz = document.querySelectorAll("[data-presence-tz]");
    for (var i = 0; i < tz.length; i++) tz[i].value = String(new Date().getTimezoneOffset());
    var b = document.body;
    if (!b || !b.hasAttribute("data-presence-keepalive")) return;
    var k = keepAlive(b.getAttribute("data-presence-keepalive") || location.origin, function () {
      return b.getAttribute("data-presence-token") || "";
    });
    // presenceRoom(name): a single-page app says where the tab is now.
    window.presenceRoom = k.room;
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
