// The console's live parts: new requests via server-sent events (badge, sound, list
// refresh), countdown clocks, and canned replies filling the reply box. No inline script:
// the Content-Security-Policy forbids it.
(function () {
  "use strict";
  var baseTitle = document.title;
  var fresh = 0;
  var badge = document.getElementById("new-count");
  var list = document.querySelector("[data-live-list]");
  var caseBox = document.querySelector("[data-case-code]");
  var source = null; // the live events, once opened

  // Signed out meanwhile (the session expired, or they signed out in another tab): the
  // list's fetch lands on the sign-in page. Say so, with a way back to this page, and stop
  // updating; the sign-in page never goes into the list.
  var signedOut = false;
  var notice = document.getElementById("signed-out");
  var signIn = notice ? notice.querySelector("a") : null;
  function isSignIn(r) {
    var path = signIn ? new URL(signIn.href).pathname : "/console/login";
    return r.status === 401 || (r.redirected && new URL(r.url).pathname === path);
  }
  function endSession() {
    signedOut = true;
    if (source) { source.close(); }
    document.body.setAttribute("data-live", "off");
    if (signIn) {
      var here = window.location.pathname + window.location.search;
      signIn.href = new URL(signIn.href).pathname + "?next=" + encodeURIComponent(here);
    }
    if (notice) { notice.hidden = false; }
  }

  // One sound for a burst of new requests (a storm's batch is hundreds of events), from
  // one audio context: browsers allow only a few.
  var BEEP_GAP = 2000;
  var lastBeep = 0;
  var audio = null;
  function beep() {
    if (lastBeep && performance.now() - lastBeep < BEEP_GAP) { return; }
    lastBeep = performance.now();
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      audio = audio || new Ctx();
      var ctx = audio;
      // Made before the reader touched the page, it starts suspended: ask again each time.
      if (ctx.state === "suspended") { ctx.resume(); }
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.05;
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.15);
    } catch (e) { /* sound is a nicety; the badge is the signal */ }
  }

  // A span of time in the page's language: the clock carries its units' wording
  // (data-dh, data-d, data-hm, data-h, data-m, data-lt), as the server's i18n.duration
  // writes them: never "0 min".
  function span(ms, el) {
    if (Math.abs(ms) < 60000) { return el.dataset.lt; }
    var minutes = Math.round(Math.abs(ms) / 60000);
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60;
    var f = el.dataset;
    var text = days > 0 ? (hours > 0 ? f.dh : f.d) : hours > 0 ? (mins > 0 ? f.hm : f.h) : f.m;
    return text.replace("%(d)d", days).replace("%(h)d", hours).replace("%(m)d", mins);
  }

  // "Copy the address" buttons (the roster's calendar feeds).
  var copied = document.querySelector(".copied");
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
        if (copied) { copied.hidden = false; }
      });
    });
  });

  function tick() {
    var clocks = document.querySelectorAll("[data-due]");
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var left = Date.parse(el.getAttribute("data-due")) - Date.now();
      var template = left < 0 ? el.getAttribute("data-late") : el.getAttribute("data-left");
      el.textContent = template.replace("{t}", span(left, el));
      el.classList.toggle("late", left < 0);
    }
  }

  // The list is fetched again after each event, but one fetch at a time and at most once
  // a second: a burst of events (a storm's batch) makes two fetches, not one per event, and
  // an older answer never lands over a newer one. Every event is followed by a fetch that
  // began after it. A fetch that fails (or hangs past FETCH_LIMIT) is tried again, 5 s on.
  var REFRESH_GAP = 1000;
  var RETRY_GAP = 5000;
  var FETCH_LIMIT = 15000;
  var refreshing = false;
  var wanted = false;
  var nextRefresh = 0;
  function refresh() {
    if (!list || signedOut) { return; }
    if (refreshing) { wanted = true; return; }
    refreshing = true;
    var wait = Math.max(0, nextRefresh - performance.now());
    window.setTimeout(function () {
      wanted = false;
      nextRefresh = performance.now() + REFRESH_GAP;
      var url = new URL(window.location.href);
      url.searchParams.set("partial", "1");
      var abort = window.AbortController ? new AbortController() : null;
      var limit = abort ? window.setTimeout(function () { abort.abort(); }, FETCH_LIMIT) : 0;
      fetch(url.toString(), { credentials: "same-origin", signal: abort ? abort.signal : undefined })
        .then(function (r) {
          if (isSignIn(r)) { endSession(); return null; }
          return r.ok ? r.text() : null;
        })
        .catch(function () { return null; })
        .then(function (html) {
          window.clearTimeout(limit);
          if (signedOut) { refreshing = false; return; }
          if (html !== null) {
            list.innerHTML = html;
            tick();
          } else {
            wanted = true;
            nextRefresh = performance.now() + RETRY_GAP;
          }
          refreshing = false;
          if (wanted) { refresh(); }
        });
    }, wait);
  }

  function onEvent(ev) {
    var data = {};
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    if (data.kind === "created") {
      fresh += 1;
      if (badge) { badge.textContent = "+" + fresh; badge.hidden = false; }
      document.title = "(" + fresh + ") " + baseTitle;
      beep();
    }
    if (caseBox && data.code === caseBox.getAttribute("data-case-code")) {
      var note = document.getElementById("changed");
      if (note) { note.hidden = false; }
    }
    refresh();
  }

  // A page without a list (a case) asks once whether its session still holds: the server
  // ends a stream when its session ends, and refuses the browser's reconnection.
  function probe() {
    fetch(window.location.href, { method: "HEAD", credentials: "same-origin" })
      .then(function (r) { if (isSignIn(r)) { endSession(); } })
      .catch(function () { /* the network blinked: nothing is known */ });
  }

  if (window.EventSource && document.body.hasAttribute("data-signed-in")) {
    source = new EventSource("/console/events");
    source.onmessage = onEvent;
    source.onopen = function () { document.body.setAttribute("data-live", "on"); };
    source.onerror = function () {
      // Refused (signed out, or too many live views open) or gone for good: the browser
      // will not retry. A list is kept fresh by polling instead.
      if (source.readyState === EventSource.CLOSED && !signedOut) {
        document.body.setAttribute("data-live", "off");
        if (!list) { probe(); return; }
        refresh(); // at once: a refusal for a session that ended says so now
        window.setInterval(refresh, 30000);
      }
    };
  }

  window.addEventListener("focus", function () {
    fresh = 0;
    document.title = baseTitle;
    if (badge) { badge.hidden = true; }
  });

  var canned = document.querySelectorAll("[data-canned]");
  for (var i = 0; i < canned.length; i++) {
    canned[i].addEventListener("change", function (ev) {
      var select = ev.target;
      var target = document.getElementById(select.getAttribute("data-canned"));
      if (target && select.value) { target.value = select.value; target.focus(); }
    });
  }

  var printers = document.querySelectorAll("[data-print]");
  for (var p = 0; p < printers.length; p++) {
    printers[p].addEventListener("click", function () { window.print(); });
  }

  tick();
  window.setInterval(tick, 30000);
})();
