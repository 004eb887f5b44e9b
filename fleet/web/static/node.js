// The node page's telemetry charts: each <figure data-chart> gets its series from
// /nodes/{id}/series (5-minute roll-ups) and draws them with uPlot (static/vendor). The state
// around them is htmx's; this file only draws, and redraws every minute or when the period
// changes. A figure says how it went in data-state (drawn, empty, failed) and data-points.
(function () {
  "use strict";
  var section = document.getElementById("node-charts");
  if (!section || typeof uPlot === "undefined") return;
  var node = section.dataset.node;
  var timeZone = section.dataset.timeZone || "UTC";
  var hours = 24;
  var plots = {};
  var COLOURS = ["#0b57d0", "#b86e00", "#1d7a3a", "#8e24aa", "#c5221f", "#00838f", "#5d4037", "#546e7a"];

  function widthOf(figure) {
    return Math.max(260, figure.querySelector(".plot").clientWidth || figure.clientWidth - 16);
  }

  function say(figure, state, text) {
    var note = figure.querySelector(".chart-note");
    figure.dataset.state = state;
    note.textContent = text || "";
    note.hidden = !text;
  }

  function options(figure, body) {
    var series = [{}];
    var bands = [];
    body.series.forEach(function (one, index) {
      var colour = COLOURS[index % COLOURS.length];
      series.push({ label: one.label, stroke: colour, width: 2, spanGaps: false });
    });
    if (body.series.length === 1) {
      // One series: its range in each bucket as a faint band around the mean.
      var colour = COLOURS[0];
      series.push({ label: "max", stroke: colour + "55", width: 1 });
      series.push({ label: "min", stroke: colour + "55", width: 1 });
      bands.push({ series: [2, 3], fill: colour + "1a" });
    }
    return {
      width: widthOf(figure),
      height: 200,
      series: series,
      bands: bands,
      scales: { x: { time: true } },
      // The axis in the city's time, as the rest of the page (not the browser's zone).
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), timeZone); },
      axes: [{}, { label: body.unit, size: 60 }],
      legend: { show: true },
    };
  }

  function data(body) {
    var columns = [body.x];
    body.series.forEach(function (one) { columns.push(one.mean); });
    if (body.series.length === 1) {
      columns.push(body.series[0].max);
      columns.push(body.series[0].min);
    }
    return columns;
  }

  function draw(figure, body) {
    var name = figure.dataset.chart;
    var plot = figure.querySelector(".plot");
    if (plots[name]) { plots[name].destroy(); delete plots[name]; }
    plot.textContent = "";
    figure.dataset.points = String(body.x.length);
    if (!body.x.length) {
      say(figure, "empty", section.dataset.noData);
      return;
    }
    say(figure, "drawn", "");
    plots[name] = new uPlot(options(figure, body), data(body), plot);
  }

  function load(figure) {
    var url = "/nodes/" + encodeURIComponent(node) + "/series?metric=" +
      encodeURIComponent(figure.dataset.chart) + "&hours=" + hours;
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) { draw(figure, body); })
      .catch(function () { say(figure, "failed", section.dataset.failed); });
  }

  function loadAll() {
    section.querySelectorAll("figure[data-chart]").forEach(load);
  }

  section.querySelectorAll("button[data-hours]").forEach(function (button) {
    button.addEventListener("click", function () {
      hours = Number(button.dataset.hours);
      section.querySelectorAll("button[data-hours]").forEach(function (other) {
        other.setAttribute("aria-pressed", other === button ? "true" : "false");
      });
      loadAll();
    });
  });

  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      section.querySelectorAll("figure[data-chart]").forEach(function (figure) {
        var plot = plots[figure.dataset.chart];
        if (plot) plot.setSize({ width: widthOf(figure), height: 200 });
      });
    }, 150);
  });

  loadAll();
  setInterval(loadAll, 60000); // a new 5-minute bucket fills slowly: once a minute is plenty
})();
