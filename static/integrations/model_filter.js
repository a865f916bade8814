// A filter box above a long grouped <select data-model-filter="Placeholder"> (the test screen's models):
// typing hides the options (and whole vendor groups) that do not contain the text. The select, its
// name and its values stay as they are, so the form posts exactly what it did without this script.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("select[data-model-filter]").forEach((select) => {
    const box = document.createElement("input");
    box.type = "search";
    box.className = "model-filter";
    box.id = `${select.id}-filter`;
    box.placeholder = select.dataset.modelFilter;
    box.setAttribute("aria-label", select.dataset.modelFilter);
    box.setAttribute("aria-controls", select.id);
    const count = document.createElement("span");
    count.className = "help model-filter-count";
    count.setAttribute("aria-live", "polite");
    select.before(box, count);

    const apply = () => {
      const words = box.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      select.querySelectorAll("option").forEach((option) => {
        if (!option.value) return;  // "provider default" always stays
        const text = `${option.value} ${option.textContent} ${option.parentElement.label || ""}`.toLowerCase();
        const match = words.every((w) => text.includes(w)) || option.selected;
        option.hidden = !match;
        if (match) shown += 1;
      });
      select.querySelectorAll("optgroup").forEach((group) => {
        group.hidden = !group.querySelector("option:not([hidden])");
      });
      count.textContent = words.length ? `${shown} model${shown === 1 ? "" : "s"} match` : "";
    };
    box.addEventListener("input", apply);
  });
});
