// embed.js: the "Online Users" widget on any page, from one tag.
//
//   <script src="https://presence.example.com/embed.js" data-token="<host JWT>" async></script>
//
// It brings what the widget needs from the Presence server it was loaded
// from — the widget's scoped CSS (static/embed.css), htmx 2.0.11, the SSE
// extension and presence.js — and loads each only when the page lacks it:
// a page that already runs htmx 2 keeps its own (never two copies), and a
// page whose htmx is another major version gets the <iframe> variant
// instead of a clash. The options, all optional, are data attributes of the
// tag (docs/EMBEDDING.md):
//
//   data-token        the viewer's access token (a JWT signed by the host)
//   data-token-url    a URL on the host answering a fresh token ({"token"},
//                     {"access"} or plain text); asked before data-token
//                     expires, and first when there is no data-token
//   data-embed-token  a read-only embed token (prs_…) for anonymous viewers
//   data-max, data-title, data-class   the widget's options
//   data-room         a room name (a document, a channel, a product page):
//                     the widget shows who is in that room now, and the
//                     viewer's socket says it is there (default: the
//                     global online list; the socket says the page's path)
//   data-target       a CSS selector: where the widget goes (default: just
//                     after the tag, or at the end of <body>)
//   data-keepalive    "false": do not keep the viewer online from this page
//                     (default: on whenever there is a token)
//   data-mode         "iframe": use the iframe variant
//
// The host page may listen for the cancelable `presence:user-click` event
// (detail: {id, username}) in both variants.
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || me.__presence) return;
  me.__presence = true;
  var ds = me.dataset;
  var base = (ds.presenceUrl || new URL(me.src, location.href).origin).replace(/\/$/, "");
  var token = ds.token || "";
  var mount = document.createElement("div");
  mount.setAttribute("data-presence-embed", "");
  var refreshTimer = null;

  // ---- loading what the widget needs, once per page --------------------
  // Several embed.js tags on one page share one loader (per Presence origin).
  var loaders = window.__presenceEmbedLoaders = window.__presenceEmbedLoaders || {};

  function loadScripts(urls, done) {
    if (!urls.length) return done(true);
    var s = document.createElement("script");
    s.src = urls[0];
    s.onload = function () { loadScripts(urls.slice(1), done); };
    s.onerror = function () { done(false); };
    document.head.appendChild(s);
  }

  function ensure(cb) {
    var l = loaders[base];
    if (!l) {
      l = loaders[base] = { state: "loading", waiting: [] };
      start(l);
    }
    if (l.state === "loading") l.waiting.push(cb);
    else cb(l.state);
  }

  function start(l) {
    if (!document.querySelector("link[data-presence-embed-css]")) {
      var css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = base + "/static/embed.css";
      css.setAttribute("data-presence-embed-css", "");
      document.head.appendChild(css);
    }
    var h = window.htmx, urls = [];
    if (h) {
      // htmx 1 and 4 lack what the widget uses (htmx 4 has no sse-swap):
      // loading htmx 2 beside them would break the page, so use a frame.
      if (!/^2\./.test(String(h.version))) return finish(l, "iframe");
      // The SSE extension sets htmx.createEventSource when it loads.
      if (!h.createEventSource && !window.__presenceStreams) urls.push(base + "/static/sse.min.js");
    } else {
      urls.push(base + "/static/htmx.min.js", base + "/static/sse.min.js");
    }
    if (!window.__presenceStreams) urls.push(base + "/static/presence.js");
    loadScripts(urls, function (ok) {
      if (!ok || !window.htmx || !window.__presenceStreams) return finish(l, "iframe");
      allowPresence(window.htmx, !h);
      finish(l, "htmx");
    });
  }

  function finish(l, state) {
    l.state = state;
    var w = l.waiting;
    l.waiting = [];
    for (var i = 0; i < w.length; i++) w[i](state);
  }

  // htmx 2 refuses requests to other origins (selfRequestsOnly). Allow this
  // Presence server, and only it: a page that relied on the setting keeps
  // every other origin refused.
  function allowPresence(htmx, ours) {
    if (!htmx.config.selfRequestsOnly) return; // the page allows any origin already
    htmx.config.selfRequestsOnly = false;
    if (ours) {
      htmx.config.allowEval = false;
      htmx.config.allowScriptTags = false;
    }
    document.addEventListener("htmx:validateUrl", function (e) {
      var d = e.detail;
      if (!d.sameHost && d.url && d.url.origin !== base) e.preventDefault();
    });
  }

  // ---- the widget --------------------------------------------------------
  function query(extra) {
    var q = [];
    function add(k, v) { if (v) q.push(k + "=" + encodeURIComponent(v)); }
    add("max", ds.max);
    add("title", ds.title);
    add("class", ds["class"]);
    add("room", ds.room);
    if (ds.embedToken) add("embed_token", ds.embedToken);
    else add("token", token);
    for (var k in extra) add(k, extra[k]);
    return q.length ? "?" + q.join("&") : "";
  }

  function htmxWidget() {
    var ph = document.createElement("div");
    ph.setAttribute("hx-get", base + "/widgets/online-users" + query());
    ph.setAttribute("hx-trigger", "load");
    ph.setAttribute("hx-swap", "outerHTML");
    // No token: the viewer's Presence session cookie (same site only).
    if (!token && !ds.embedToken) ph.setAttribute("hx-request", '{"credentials": true}');
    ph.textContent = "Loading who's online…";
    mount.appendChild(ph);
    window.htmx.process(mount);
  }

  // A new token: swap the widget for one that carries it (htmx's swap
  // closes the old stream), so it keeps working past the old one's expiry.
  function rerender() {
    var w = mount.querySelector("[data-presence-widget]");
    if (!w || !window.htmx) return;
    window.htmx.ajax("GET", base + "/widgets/online-users" + query(), { target: w, swap: "outerHTML" });
  }

  var frame = null;
  function iframeWidget() {
    frame = document.createElement("iframe");
    frame.src = base + "/embed/online-users" + query({ keepalive: keepAliveWanted() ? "" : "0" });
    frame.title = ds.title || "Online Users";
    frame.setAttribute("data-testid", "presence-embed-frame");
    frame.style.cssText = "display:block;width:100%;height:260px;border:0;background:transparent";
    mount.appendChild(frame);
    // The framed page reports its height and the clicks on its cards.
    window.addEventListener("message", function (e) {
      if (e.origin !== base || e.source !== frame.contentWindow) return;
      var m = e.data || {};
      if (m.presence === "resize" && m.height > 0) frame.style.height = Math.ceil(m.height) + "px";
      if (m.presence === "user-click") {
        mount.dispatchEvent(new CustomEvent("presence:user-click", {
          bubbles: true, cancelable: true, detail: { id: String(m.id), username: String(m.username) }
        }));
      }
    });
  }

  function keepAliveWanted() {
    return ds.keepalive === "true" || (ds.keepalive !== "false" && !!token);
  }

  // ---- tokens --------------------------------------------------------------
  function expiry(jwt) {
    try {
      var p = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(p + "===".slice((p.length + 3) % 4))).exp * 1000 || 0;
    } catch (e) {
      return 0;
    }
  }

  function fetchToken(cb) {
    fetch(ds.tokenUrl, { credentials: "include", headers: { Accept: "application/json, text/plain" } })
      .then(function (r) {
        if (!r.ok) throw new Error("token: " + r.status);
        return r.text();
      })
      .then(function (t) {
        t = t.trim();
        if (t.charAt(0) === "{") {
          var j = JSON.parse(t);
          t = j.token || j.access || "";
        }
        cb(t);
      })
      .catch(function () { cb(""); });
  }

  // Ask the host for a new token halfway through this one's remaining
  // life (a minute before it ends, for short ones; never within 5 s), and
  // retry in 30 s when it does not answer.
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!ds.tokenUrl || !token) return;
    var left = expiry(token) - Date.now();
    if (left <= 0) left = 60000;
    refreshTimer = setTimeout(function () {
      fetchToken(function (t) {
        if (!t) {
          refreshTimer = setTimeout(scheduleRefresh, 30000);
          return;
        }
        token = t;
        if (frame) frame.src = base + "/embed/online-users" + query({ keepalive: keepAliveWanted() ? "" : "0" });
        else rerender();
        scheduleRefresh();
      });
    }, Math.max(5000, Math.min(left - 60000, left / 2)));
  }

  // ---- start -------------------------------------------------------------
  function place() {
    var target = ds.target && document.querySelector(ds.target);
    if (target) target.appendChild(mount);
    else if (me.parentNode && me.parentNode !== document.head && document.body.contains(me)) me.parentNode.insertBefore(mount, me.nextSibling);
    else document.body.appendChild(mount);
  }

  function run() {
    place();
    if (ds.mode === "iframe") {
      iframeWidget();
      scheduleRefresh();
      return;
    }
    ensure(function (state) {
      if (state === "iframe") {
        iframeWidget();
        scheduleRefresh();
        return;
      }
      htmxWidget();
      // One presence socket per page and server, however many tags.
      var kept = window.__presenceEmbedKeepAlives = window.__presenceEmbedKeepAlives || {};
      if (keepAliveWanted() && !kept[base]) kept[base] = window.__presenceKeepAlive(base, function () { return token; }, ds.room);
      scheduleRefresh();
    });
  }

  function ready() {
    if (!token && ds.tokenUrl) {
      fetchToken(function (t) {
        token = t;
        run();
      });
      return;
    }
    run();
  }

  // After the page's own scripts (defer ones included) have run, so a page
  // that loads htmx after this tag is still seen to have it.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();

})();
