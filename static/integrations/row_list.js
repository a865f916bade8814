// Row lists (integrations/widgets/row_list.html): the failover chain and the service budgets.
//
// Without JavaScript the widget is a table of inputs with spare empty rows and, for ordered lists,
// an order number per row (the server sorts by it). This adds what a person expects on top: move a
// row up or down, remove it, add one; the order numbers follow the rows so what is posted is what
// is shown.
(function () {
  "use strict";

  function renumber(list) {
    list.querySelectorAll("tbody .row-order-input").forEach((input, i) => { input.value = String(i + 1); });
  }

  function button(text, cls, label) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `button row-tool ${cls}`;
    b.textContent = text;
    b.title = label;
    b.setAttribute("aria-label", label);
    return b;
  }

  function addTools(list, row) {
    const cell = row.querySelector(".row-tools");
    if (!cell || cell.childElementCount) return;
    if (list.classList.contains("row-list-ordered")) {
      cell.append(button("↑", "row-up", "Move up"), button("↓", "row-down", "Move down"));
    }
    cell.append(button("✕", "row-remove", "Remove"));
  }

  function nextIndex(list) {
    let max = -1;
    list.querySelectorAll("tbody [name]").forEach((el) => {
      const m = el.name.match(/-(\d+)-[^-]+$/);
      if (m) max = Math.max(max, Number(m[1]));
    });
    return max + 1;
  }

  function init(list) {
    list.querySelectorAll("tbody .row-list-row").forEach((row) => addTools(list, row));
    const actions = list.querySelector(".row-list-actions");
    if (actions) actions.hidden = false;
    list.addEventListener("click", (event) => {
      const target = event.target.closest("button");
      if (!target || !list.contains(target)) return;
      const row = target.closest(".row-list-row");
      const body = list.querySelector("tbody");
      if (target.classList.contains("row-up") && row.previousElementSibling) {
        body.insertBefore(row, row.previousElementSibling);
      } else if (target.classList.contains("row-down") && row.nextElementSibling) {
        body.insertBefore(row.nextElementSibling, row);
      } else if (target.classList.contains("row-remove")) {
        row.remove();
      } else if (target.classList.contains("row-add")) {
        const template = list.querySelector("template.row-list-template");
        const html = template.innerHTML.replace(/__prefix__/g, String(nextIndex(list)));
        body.insertAdjacentHTML("beforeend", html);
        const added = body.lastElementChild;
        addTools(list, added);
        const first = added.querySelector("select, input:not([type=number])");
        if (first) first.focus();
      } else {
        return;
      }
      event.preventDefault();
      renumber(list);
      if (target.isConnected && !target.classList.contains("row-add")) target.focus();
    });
    renumber(list);
  }

  function start() { document.querySelectorAll("[data-row-list]").forEach(init); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
