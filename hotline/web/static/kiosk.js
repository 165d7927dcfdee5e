// The kiosk: an idle timer that clears everything after a minute without input, and a
// submit that survives a network hiccup (retries with the same client-made idempotency key,
// so a retry never makes a second case). No inline script: the CSP forbids it.
(function () {
  "use strict";
  var IDLE_MS = 60000;
  var home = document.body.getAttribute("data-home") || "/kiosk";
  var timer = null;

  function clearAndRestart() {
    var signout = document.getElementById("kiosk-signout");
    if (signout) { signout.submit(); return; } // a member's session never outlives the visit
    window.location.replace(home);
  }
  function arm() {
    if (timer) { window.clearTimeout(timer); }
    timer = window.setTimeout(clearAndRestart, IDLE_MS);
  }
  ["pointerdown", "keydown", "input", "touchstart", "change"].forEach(function (name) {
    document.addEventListener(name, arm, { passive: true });
  });
  arm();

  var print = document.getElementById("print");
  if (print) { print.addEventListener("click", function () { window.print(); }); }

  var form = document.getElementById("kiosk-form");
  if (!form) { return; }
  var key = form.querySelector("[name=idem]");
  var status = document.getElementById("send-status");
  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID().replace(/-/g, ""); }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  key.value = newKey(); // made here, kept for every retry of this visitor's request
  var sending = false;

  function showErrors(errors) {
    var shown = form.querySelectorAll(".error");
    for (var i = 0; i < shown.length; i++) { shown[i].textContent = ""; }
    Object.keys(errors).forEach(function (name) {
      var el = document.getElementById("err-" + name);
      if (el) { el.textContent = errors[name]; }
    });
    status.textContent = form.getAttribute("data-fix");
  }

  function send(attempt) {
    status.textContent = form.getAttribute(attempt ? "data-retrying" : "data-sending");
    fetch(form.getAttribute("action"), {
      method: "POST",
      body: new FormData(form),
      headers: { "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 201) {
        return response.json().then(function (data) { window.location.assign(data.slip_url); });
      }
      if (response.status >= 500 || response.status === 429) { throw new Error("retry"); }
      sending = false;
      return response.json().then(function (data) { showErrors(data.errors || {}); });
    }).catch(function () {
      if (attempt < 6) {
        window.setTimeout(function () { send(attempt + 1); }, Math.min(500 * Math.pow(2, attempt), 8000));
      } else {
        sending = false;
        status.textContent = form.getAttribute("data-failed");
      }
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (sending) { return; }
    sending = true;
    send(0);
  });
})();
