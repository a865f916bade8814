// The admin test screen's "Stream" button: POST the form to the streaming endpoint and show the
// answer as it arrives (server-sent events: {"delta"}, then {"done", totals} or {"error"}).
// While it runs the buttons are disabled and a spinner counts seconds (ai_busy.js); errors, whether
// the request is refused or the stream ends in one, become an admin error message, never raw JSON.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("test-provider-form");
  const button = document.getElementById("stream-button");
  if (!form || !button) return;

  function errorText(payload, fallback) {
    const error = payload && payload.error;
    if (error && (error.code || error.message)) {
      return `Streaming failed (${error.label || error.code}): ${error.message}`;
    }
    return fallback;
  }

  async function stream() {
    const box = document.getElementById("stream-output");
    const answer = document.getElementById("stream-answer");
    const stats = document.getElementById("stream-stats");
    document.querySelectorAll("#stream-error").forEach((el) => el.remove());
    // An earlier answer or error on the page belongs to another prompt: don't leave it beside this one.
    document.querySelectorAll("#test-result, #test-error").forEach((el) => { el.hidden = true; });
    box.hidden = false;
    answer.textContent = "";
    stats.textContent = "";
    const fail = (text) => {
      const item = window.aiBusy.message("error", text);
      item.id = "stream-error";
      if (!answer.textContent) box.hidden = true;  // nothing arrived: no empty answer box
    };
    let response;
    try {
      response = await fetch(form.dataset.streamUrl, {
        method: "POST",
        body: new FormData(form),
        headers: {"X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value},
      });
    } catch (exc) {
      fail("Streaming failed: the server could not be reached.");
      return;
    }
    if (!response.ok) {
      let payload = null;
      try { payload = await response.json(); } catch (exc) { payload = null; }
      fail(errorText(payload, `Streaming failed: the server answered ${response.status}.`));
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
        if (!line.startsWith("data: ")) continue;
        const data = JSON.parse(line.slice(6));
        if (data.delta) {
          answer.textContent += data.delta;
        } else if (data.error) {
          fail(errorText(data, "Streaming failed."));
        } else if (data.done) {
          stats.textContent = `${data.provider_label || data.provider} · ${data.model} · ${data.prompt_tokens} prompt + ` +
            `${data.completion_tokens} completion = ${data.total_tokens} tokens · ${data.latency_ms} ms · ` +
            `cost ${data.cost === null ? "not priced" : data.cost}`;
        }
      }
    }
  }

  button.addEventListener("click", async (event) => {
    event.preventDefault();
    if (form.dataset.aiBusyActive) return;
    form.dataset.aiBusyActive = "1";
    const done = window.aiBusy.start(button, window.aiBusy.buttonsOf(form), "Streaming");
    try {
      await stream();
    } finally {
      done();
      delete form.dataset.aiBusyActive;
    }
  });
});
