/* Draws the usage dashboard's charts with Chart.js from the JSON the view embeds (#dashboard-data). */
(function () {
  "use strict";
  const source = document.getElementById("dashboard-data");
  if (!source || typeof Chart === "undefined") { return; }
  const data = JSON.parse(source.textContent);
  const palette = ["#417690", "#e07a5f", "#81b29a", "#f2cc8f", "#6d597a", "#3d405b", "#b56576", "#43aa8b", "#999999"];
  const charts = {};
  const color = (i) => palette[i % palette.length];

  // Money as integrations/ai/governance/money.py writes it: $5.00, $1,234.50; under a cent three
  // significant digits ($0.00428, $0.000025), never an exponent (Chart.js would print 2.5e-5).
  function money(value) {
    const n = Number(value);
    if (!Number.isFinite(n)) { return ""; }
    const sign = n < 0 ? "-" : "";
    const a = Math.abs(n);
    if (a === 0 || Math.round(a * 100) >= 1) {
      return sign + "$" + a.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    return sign + "$" + Number(a.toPrecision(3)).toLocaleString("en-US", { maximumFractionDigits: 20 });
  }
  window.panelMoney = money;  // the browser tests read the same function the charts use
  const moneyTicks = { callback: (value) => money(value) };
  const moneyTooltip = { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${money(ctx.parsed.y)}` } };

  function stacked(id, metric, dimension) {
    const series = data.series[dimension][metric];
    const datasets = Object.keys(series).map((key, i) => ({ label: key, data: series[key], backgroundColor: color(i) }));
    const isMoney = metric === "cost";
    if (charts[id]) { charts[id].destroy(); }
    charts[id] = new Chart(document.getElementById(id), {
      type: "bar",
      data: { labels: data.days, datasets: datasets },
      options: { animation: false, responsive: true,
                 plugins: { legend: { position: "bottom" }, tooltip: isMoney ? moneyTooltip : {} },
                 scales: { x: { stacked: true },
                           y: { stacked: true, beginAtZero: true, ticks: isMoney ? moneyTicks : {} } } },
    });
  }

  function drawStacked(dimension) {
    stacked("chart-cost", "cost", dimension);
    stacked("chart-requests", "requests", dimension);
    stacked("chart-tokens", "tokens", dimension);
  }

  drawStacked("provider");
  document.querySelectorAll("input[name=dimension]").forEach((input) => {
    input.addEventListener("change", () => drawStacked(input.value));
  });

  new Chart(document.getElementById("chart-errors"), {
    type: "line",
    data: { labels: data.days, datasets: [{ label: "errors / attempts %", data: data.error_rate, borderColor: color(1),
                                            backgroundColor: color(1), spanGaps: true }] },
    options: { animation: false, plugins: { legend: { position: "bottom" } }, scales: { y: { beginAtZero: true } } },
  });

  new Chart(document.getElementById("chart-latency"), {
    type: "bar",
    data: { labels: data.latency.map((r) => r.provider + " · " + r.model),
            datasets: [{ label: "p50", data: data.latency.map((r) => r.p50), backgroundColor: color(0) },
                       { label: "p95", data: data.latency.map((r) => r.p95), backgroundColor: color(1) }] },
    options: { animation: false, indexAxis: "y", plugins: { legend: { position: "bottom" } },
               scales: { x: { beginAtZero: true } } },
  });

  new Chart(document.getElementById("chart-cache"), {
    data: { labels: data.days,
            datasets: [{ type: "bar", label: "cache hits", data: data.cache.hits, backgroundColor: color(2), yAxisID: "y" },
                       { type: "line", label: "saved USD", data: data.cache.saved, borderColor: color(4),
                         backgroundColor: color(4), yAxisID: "y1" }] },
    options: { animation: false, plugins: { legend: { position: "bottom" } },
               scales: { y: { beginAtZero: true, position: "left", ticks: { precision: 0 } },
                         y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                               ticks: moneyTicks } } },
  });

  const budget = data.budget;
  const budgetSets = [
    { label: "spent (cumulative)", data: budget.cumulative, borderColor: color(0), backgroundColor: color(0) },
    { label: "forecast", data: budget.forecast_line, borderColor: color(1), borderDash: [6, 4], pointRadius: 0 },
  ];
  if (budget.cap !== null) {
    budgetSets.push({ label: "monthly cap", data: budget.days.map(() => budget.cap), borderColor: "#ba2121", pointRadius: 0 });
  }
  charts["chart-budget"] = new Chart(document.getElementById("chart-budget"), {
    type: "line",
    data: { labels: budget.days, datasets: budgetSets },
    options: { animation: false, plugins: { legend: { position: "bottom" }, tooltip: moneyTooltip },
               scales: { y: { beginAtZero: true, ticks: moneyTicks } } },
  });
  window.panelCharts = charts;

  new Chart(document.getElementById("chart-refusals"), {
    type: "bar",
    data: { labels: data.refusals.map((r) => r.reason),
            datasets: [{ label: "refused requests", data: data.refusals.map((r) => r.count), backgroundColor: color(6) }] },
    options: { animation: false, plugins: { legend: { display: false } },
               scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
})();
