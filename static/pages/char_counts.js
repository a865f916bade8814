// Live character counts against a field's limit (meta 60/160, block fields): `<span class="char-count"
// data-for="ID">` shows "n/limit" for the input with that id and `data-limit`, marked when over.
(function () {
  "use strict";
  function update(span) {
    const input = document.getElementById(span.dataset.for);
    if (!input) return;
    const limit = parseInt(input.dataset.limit || input.getAttribute("maxlength") || "0", 10);
    const length = input.value.length;
    span.textContent = limit ? `${length}/${limit}` : `${length}`;
    span.classList.toggle("over-limit", limit > 0 && length > limit);
  }
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".char-count[data-for]").forEach((span) => {
      update(span);
      const input = document.getElementById(span.dataset.for);
      if (input) input.addEventListener("input", () => update(span));
    });
  });
})();
