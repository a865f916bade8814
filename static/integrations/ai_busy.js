// Busy states for every admin screen that calls an AI provider (issue 13, deliverable 6).
//
// A form marked `data-ai-busy` (or a form a `[data-ai-busy]` button points at with `form=`) shows a
// spinner with elapsed seconds and disables its buttons once it is submitted, so a slow or unreachable
// provider is visibly "working" instead of seconds of silence, and nobody submits twice. The button's
// own name/value is copied into a hidden input first: a disabled submitter is not sent, and the views
// branch on it (`_save`, `_send`, `_preview`).
(function () {
  "use strict";

  function buttonsOf(form) {
    const own = Array.from(form.querySelectorAll("button, input[type=submit]"));
    const linked = form.id ? Array.from(document.querySelectorAll(`[form="${form.id}"]`)) : [];
    return own.concat(linked).filter((el) => el.matches("button, input[type=submit]"));
  }

  // Show the spinner after `anchor` and disable `buttons`; returns a function that undoes both.
  function start(anchor, buttons, label) {
    const status = document.createElement("span");
    status.className = "ai-busy";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    const spinner = document.createElement("span");
    spinner.className = "ai-spinner";
    spinner.setAttribute("aria-hidden", "true");
    const text = document.createElement("span");
    text.className = "ai-busy-text";
    status.append(spinner, text);
    const began = Date.now();
    const tick = () => {
      text.textContent = `${label || "Waiting for the AI provider"}… ${Math.floor((Date.now() - began) / 1000)} s`;
    };
    tick();
    const timer = setInterval(tick, 250);
    anchor.insertAdjacentElement("afterend", status);
    const wasDisabled = buttons.map((b) => b.disabled);
    buttons.forEach((b) => { b.disabled = true; b.setAttribute("aria-disabled", "true"); });
    return () => {
      clearInterval(timer);
      status.remove();
      buttons.forEach((b, i) => { b.disabled = wasDisabled[i]; b.removeAttribute("aria-disabled"); });
    };
  }

  // Show `text` as an admin message (the same markup Django's messages framework renders).
  function message(level, text) {
    let list = document.querySelector("ul.messagelist");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messagelist";
      const main = document.getElementById("main") || document.getElementById("content") || document.body;
      const content = document.getElementById("content");
      if (content && content.parentNode) content.parentNode.insertBefore(list, content);
      else main.prepend(list);
    }
    const item = document.createElement("li");
    item.className = level;
    item.textContent = text;
    list.append(item);
    return item;
  }

  window.aiBusy = {start, message, buttonsOf};

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const submitter = event.submitter;
    const marked = form.hasAttribute("data-ai-busy") || (submitter && submitter.hasAttribute("data-ai-busy"));
    if (!marked || event.defaultPrevented) return;
    if (form.dataset.aiBusyActive) { event.preventDefault(); return; }  // a second click while busy
    form.dataset.aiBusyActive = "1";
    if (submitter && submitter.name) {
      const carry = document.createElement("input");
      carry.type = "hidden";
      carry.name = submitter.name;
      carry.value = submitter.value;
      form.append(carry);
    }
    const label = (submitter && submitter.dataset.aiBusyLabel) || form.dataset.aiBusyLabel;
    // Disable after the browser has collected the form data for this submission.
    setTimeout(() => start(submitter || form, buttonsOf(form), label), 0);
  });

  // Back/forward cache: a page restored after navigation must not stay "busy".
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    document.querySelectorAll(".ai-busy").forEach((el) => el.remove());
    document.querySelectorAll("form[data-ai-busy-active]").forEach((form) => {
      delete form.dataset.aiBusyActive;
      buttonsOf(form).forEach((b) => { b.disabled = false; });
    });
  });
})();
