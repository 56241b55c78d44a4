// The retention dashboard's charts, drawn with the vendored Chart.js from the data the page embeds
// (json_script "dashboard-data"): series, tierMix, flows, segments.
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    var node = document.getElementById("dashboard-data");
    if (!node || typeof Chart === "undefined") return;
    var data = JSON.parse(node.textContent);
    var css = getComputedStyle(document.documentElement);
    var text = (css.getPropertyValue("--body-fg") || "#333").trim();
    Chart.defaults.color = text;
    Chart.defaults.maintainAspectRatio = true;
    var palette = ["#2f6eba", "#c0392b", "#27ae60", "#f39c12", "#8e44ad", "#16a085", "#7f8c8d"];

    function draw(id, config) {
      var canvas = document.getElementById(id);
      if (canvas) new Chart(canvas, config);
    }

    draw("chart-retention", {
      type: "line",
      data: {
        labels: data.series.map(function (p) { return p.end; }),
        datasets: [
          { label: "Retention %", data: data.series.map(function (p) { return p.retention_rate; }), borderColor: palette[0], backgroundColor: palette[0], tension: 0.2 },
          { label: "Churn %", data: data.series.map(function (p) { return p.churn_rate; }), borderColor: palette[1], backgroundColor: palette[1], tension: 0.2 }
        ]
      },
      options: { scales: { y: { beginAtZero: true, max: 100 } }, plugins: { tooltip: { mode: "index", intersect: false } } }
    });

    draw("chart-tiers", {
      type: "doughnut",
      data: {
        labels: data.tierMix.map(function (t) { return t.name; }),
        datasets: [{ data: data.tierMix.map(function (t) { return t.members; }), backgroundColor: palette }]
      },
      options: { plugins: { legend: { position: "right" } } }
    });

    draw("chart-flows", {
      type: "bar",
      data: {
        labels: data.flows.map(function (f) { return f.month; }),
        datasets: [
          { label: "Earned", data: data.flows.map(function (f) { return f.earned; }), backgroundColor: palette[2] },
          { label: "Redeemed", data: data.flows.map(function (f) { return f.redeemed; }), backgroundColor: palette[0] },
          { label: "Expired", data: data.flows.map(function (f) { return f.expired; }), backgroundColor: palette[6] }
        ]
      },
      options: { scales: { y: { beginAtZero: true } } }
    });

    draw("chart-segments", {
      type: "bar",
      data: {
        labels: data.segments.map(function (s) { return s.name; }),
        datasets: [{ label: "Members", data: data.segments.map(function (s) { return s.members; }), backgroundColor: palette }]
      },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false } },
        onClick: function (event, elements) {  // a segment's bar opens its member list
          if (elements.length) window.location.href = data.segments[elements[0].index].url;
        },
        onHover: function (event, elements) {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        }
      }
    });
  });
})();
