// The editors' screens stream the model's answer as it arrives, with Cancel (issue 27).
//
// A form with `data-stream-url` gets its `[data-stream-start]` button wired: the form is POSTed to the
// streaming endpoint, the text deltas ({"delta"} server-sent events) appear in `[data-stream-text]`,
// and `[data-stream-cancel]` aborts the request (AbortController): the server closes the provider's
// stream and its ledger row is "cancelled". The last event is {"done", review_url} (go to the review
// step), {"done", errors, message} (the answer did not validate: nothing was saved; no errors: nothing
// was asked, the message says why) or {"error"}. One module for every screen that streams; the plain
// submit button keeps working without JavaScript.
document.addEventListener("DOMContentLoaded", () => {
  "use strict";

  document.querySelectorAll("form[data-stream-url]").forEach((form) => {
    const startButton = form.querySelector("[data-stream-start]");
    const cancelButton = form.querySelector("[data-stream-cancel]");
    const box = document.getElementById(form.dataset.streamOutput || "stream-output");
    if (!startButton || !cancelButton || !box) return;
    const text = box.querySelector("[data-stream-text]");
    const status = box.querySelector("[data-stream-status]");
    const errors = box.querySelector("[data-stream-errors]");
    let controller = null;

    function show(state, message) {
      box.dataset.state = state;
      status.textContent = message;
    }

    function showErrors(list) {
      errors.replaceChildren(...list.map((problem) => {
        const item = document.createElement("li");
        item.textContent = problem;
        return item;
      }));
      errors.hidden = list.length === 0;
    }

    function handle(data) {
      if (data.delta) {
        text.textContent += data.delta;
      } else if (data.error) {
        show("error", `The answer failed (${data.error.label || data.error.code}): ${data.error.message}. Nothing was saved.`);
      } else if (data.done && data.review_url) {
        show("done", "The answer is complete and valid: opening the review step…");
        window.location.assign(data.review_url);
      } else if (data.done) {
        const problems = data.errors || [];
        // no errors: nothing needed asking (e.g. a translation already up to date); the message says so
        show(problems.length ? "invalid" : "finished", data.message || "The answer does not fit: nothing was saved.");
        showErrors(problems);
      }
    }

    async function run() {
      controller = new AbortController();
      box.hidden = false;
      text.textContent = "";
      showErrors([]);
      show("streaming", "Streaming the answer…");
      const others = Array.from(form.querySelectorAll("input[type=submit], button[type=submit]"));
      others.forEach((button) => { button.disabled = true; });  // one answer at a time: no plain submit meanwhile
      startButton.disabled = true;
      cancelButton.hidden = false;
      try {
        const response = await fetch(form.dataset.streamUrl, {
          method: "POST",
          body: new FormData(form),
          headers: {"X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value},
          signal: controller.signal,
        });
        if (!response.ok) {
          let payload = null;
          try { payload = await response.json(); } catch (exc) { payload = null; }
          const error = payload && payload.error;
          show("error", error ? `Refused: ${error.message}` : `The server answered ${response.status}.`);
          return;
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, {stream: true});
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const line = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (line.startsWith("data: ")) handle(JSON.parse(line.slice(6)));
          }
        }
        if (box.dataset.state === "streaming") show("error", "The answer stopped before it was complete. Nothing was saved.");
      } catch (exc) {
        if (exc.name === "AbortError") {
          show("cancelled", "Cancelled: the provider's answer was stopped and nothing was saved.");
        } else {
          show("error", "The server could not be reached. Nothing was saved.");
        }
      } finally {
        controller = null;
        others.forEach((button) => { button.disabled = false; });
        startButton.disabled = false;
        cancelButton.hidden = true;
      }
    }

    startButton.addEventListener("click", (event) => {
      event.preventDefault();
      if (!controller) run();
    });
    cancelButton.addEventListener("click", (event) => {
      event.preventDefault();
      if (controller) controller.abort();
    });
  });
});
