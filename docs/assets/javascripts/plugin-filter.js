// The plugin catalog's filter (docs/marketplace/plugins/, written by
// tools/docs/hook_marketplace.py): rows missing any of the typed words are hidden, and a
// status line says how many match. Without JavaScript the filter stays hidden and every
// row shows.
(() => {
  const input = document.getElementById("plugin-filter");
  const table = document.getElementById("plugin-table");
  const status = document.getElementById("plugin-filter-status");
  if (!input || !table || !status) return;
  const rows = Array.from(table.tBodies[0].rows);
  const texts = rows.map((row) => row.textContent.toLowerCase());
  const apply = () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    rows.forEach((row, i) => {
      const match = words.every((word) => texts[i].includes(word));
      row.hidden = !match;
      shown += match ? 1 : 0;
    });
    status.textContent = words.length ? `${shown} of ${rows.length} plugins match` : "";
  };
  input.addEventListener("input", apply);
  input.closest(".plugin-filter").hidden = false;
  apply(); // a value the browser restored when coming back to the page
})();
