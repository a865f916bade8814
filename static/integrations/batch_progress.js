// Live progress of batch jobs (issue 13, deliverable 5): polls the job's small JSON view while it runs.
//
// On a job's page (#batch-job) it updates the bar, the counts and the status, appends finished items
// to the items table (asking only for items after the ones shown) and shows Cancel / Retry as they
// apply. In the job list, every running job's progress bar (.batch-progress) is kept up to date.
(function () {
  "use strict";
  const INTERVAL = 1000;

  function poll(url, since, onData) {
    const target = new URL(url, window.location.href);
    target.searchParams.set("since", String(since()));
    return fetch(target, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then(onData);
  }

  function repeat(step) {
    const run = () => step().then((again) => { if (again) setTimeout(run, INTERVAL); })
      .catch(() => setTimeout(run, INTERVAL * 5));
    setTimeout(run, INTERVAL);
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function jobPage(box) {
    const bar = document.getElementById("batch-bar");
    const tbody = document.querySelector("#batch-items tbody");
    const table = document.getElementById("batch-items");
    let next = Number(box.dataset.next || 0);
    repeat(() => poll(box.dataset.progressUrl, () => next, (data) => {
      bar.value = data.percent;
      document.getElementById("batch-percent").textContent = `${data.percent}%`;
      const status = document.getElementById("batch-status");
      status.textContent = data.status_label + (data.cancel_requested && !data.finished ? " (stopping)" : "");
      status.className = `batch-status status-${data.status}`;
      document.getElementById("batch-counts").textContent =
        `${data.processed} of ${data.total} done · ${data.succeeded} succeeded · ${data.failed} failed`;
      const error = document.getElementById("batch-error");
      error.textContent = data.error;
      error.hidden = !data.error;
      data.items.forEach((item) => {
        const row = document.createElement("tr");
        row.className = item.ok ? "item-ok" : "item-failed";
        cell(row, item.item);
        const icon = document.createElement("img");
        icon.src = item.ok ? table.dataset.yesIcon : table.dataset.noIcon;
        icon.alt = item.ok ? "yes" : "no";
        cell(row, "").appendChild(icon);
        cell(row, item.code || "—");
        cell(row, item.message);
        tbody.appendChild(row);
      });
      if (data.items.length) document.getElementById("batch-items-empty").hidden = true;
      next = data.next;
      const cancel = document.querySelector("form.batch-cancel");
      const retry = document.querySelector("form.batch-retry");
      if (cancel) cancel.hidden = !data.can_cancel;
      if (retry) retry.hidden = !data.can_retry;
      box.dataset.finished = data.finished ? "1" : "";
      return !data.finished || data.next < data.processed;
    }));
  }

  function listBar(span) {
    repeat(() => poll(span.dataset.progressUrl, () => 1e9, (data) => {
      span.querySelector("progress").value = data.percent;
      span.querySelector(".batch-count").textContent = `${data.processed}/${data.total}`;
      span.dataset.finished = data.finished ? "1" : "";
      return !data.finished;
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("batch-job");
    if (box && !box.dataset.finished) jobPage(box);
    document.querySelectorAll(".batch-progress[data-progress-url]").forEach((span) => {
      if (!span.dataset.finished) listBar(span);
    });
  });
})();
