// watchpost pages: the few things htmx does not do. No framework, nothing from the internet.
(function () {
  "use strict";
  var body = document.body;
  // Countdowns run on the fleet's clock: the offset to this browser's clock at page load.
  var offset = Number(body.dataset.serverNow || Date.now()) - Date.now();
  function now() { return Date.now() + offset; }

  // The live stream (/live, server-sent events) says what changed; each change becomes a
  // `live:<name>` event on the body, which fragments listen for
  // (hx-trigger="live:alarms from:body"). EventSource reconnects by itself; a lost stream
  // is shown meanwhile.
  var lost = document.getElementById("live-lost");
  if (body.dataset.live && window.EventSource) {
    var source = new EventSource(body.dataset.live);
    ["alarms", "faults", "nodes", "ota"].forEach(function (name) {
      source.addEventListener(name, function () {
        if (window.htmx) window.htmx.trigger(body, "live:" + name);
      });
    });
    source.onopen = function () { if (lost) lost.hidden = true; body.dataset.liveOpen = "1"; };
    source.onerror = function () { if (lost) lost.hidden = false; };
  }

  // A fragment that could not be fetched says so instead of leaving a blank.
  var apiError = document.getElementById("api-error");
  var failedOn = null;  // the path whose request failed: its own success clears the notice
  function pathOf(event) { return event.detail && event.detail.pathInfo && event.detail.pathInfo.requestPath; }
  function failed(event) {
    if (!apiError) return;
    var xhr = event.detail && event.detail.xhr;
    var reason = xhr && xhr.status ? "HTTP " + xhr.status : "no connection";
    apiError.textContent = (apiError.dataset.message || "%s").replace("%s", reason);
    apiError.hidden = false;
    failedOn = pathOf(event);
  }
  document.addEventListener("htmx:responseError", failed);
  document.addEventListener("htmx:sendError", failed);
  document.addEventListener("htmx:afterRequest", function (event) {
    // Another fragment refreshing fine says nothing of the request that failed.
    if (apiError && event.detail.successful && pathOf(event) === failedOn) {
      apiError.hidden = true;
      failedOn = null;
    }
  });

  // A new bell alarm in the banner: a tone the operator hears across the room.
  var heard = {};
  function chime() {
    try {
      var Audio = window.AudioContext || window.webkitAudioContext;
      var context = new Audio();
      [0, 0.35, 0.7].forEach(function (at) {
        var tone = context.createOscillator();
        var gain = context.createGain();
        tone.frequency.value = 880;
        gain.gain.setValueAtTime(0.2, context.currentTime + at);
        gain.gain.exponentialRampToValueAtTime(0.001, context.currentTime + at + 0.3);
        tone.connect(gain).connect(context.destination);
        tone.start(context.currentTime + at);
        tone.stop(context.currentTime + at + 0.3);
      });
    } catch (e) { /* no audio device: the banner still shows */ }
  }
  document.addEventListener("htmx:afterSwap", function (event) {
    var banner = event.target.querySelector && event.target.querySelector("[data-alarm-id]");
    if (banner && !heard[banner.dataset.alarmId]) {
      heard[banner.dataset.alarmId] = true;
      body.dataset.lastChime = banner.dataset.alarmId;
      chime();
    }
  });

  // Countdowns: <span data-deadline="epoch ms" data-at-risk-ms="ms"> shows h:mm:ss left,
  // negative once breached; its class says ok, at-risk or breached.
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function show(ms) {
    var sign = ms < 0 ? "-" : "";
    var s = Math.floor(Math.abs(ms) / 1000);
    return sign + Math.floor(s / 3600) + ":" + two(Math.floor(s / 60) % 60) + ":" + two(s % 60);
  }
  function tick() {
    var t = now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      if (el.dataset.stopped) return;
      var left = Number(el.dataset.deadline) - t;
      el.textContent = show(left);
      var risk = Number(el.dataset.atRiskMs || 0);
      el.classList.toggle("breached", left < 0);
      el.classList.toggle("at-risk", left >= 0 && left < risk);
    });
  }
  tick();
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSwap", tick);
})();
