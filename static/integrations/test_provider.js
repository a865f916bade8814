// The admin test screen's "Stream" button: POST the form to the streaming endpoint and show the
// answer as it arrives (server-sent events: {"delta"}, then {"done", totals} or {"error"}).
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("test-provider-form");
  const button = document.getElementById("stream-button");
  if (!form || !button) return;
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    const box = document.getElementById("stream-output");
    const answer = document.getElementById("stream-answer");
    const stats = document.getElementById("stream-stats");
    box.hidden = false;
    answer.textContent = "";
    stats.textContent = "Streaming…";
    const response = await fetch(form.dataset.streamUrl, {
      method: "POST",
      body: new FormData(form),
      headers: {"X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value},
    });
    if (!response.ok) {
      stats.textContent = "Error: " + (await response.text());
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
          stats.textContent = `Error: ${data.error.code}: ${data.error.message}`;
        } else if (data.done) {
          stats.textContent = `${data.provider} · ${data.model} · ${data.prompt_tokens} prompt + ` +
            `${data.completion_tokens} completion = ${data.total_tokens} tokens · ${data.latency_ms} ms · ` +
            `cost ${data.cost === null ? "not reported" : "$" + data.cost}`;
        }
      }
    }
  });
});
