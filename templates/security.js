// Sorting and filtering for the findings table. The page is complete without it.
(function () {
  var table = document.getElementById("findings");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var controls = document.getElementById("controls");
  controls.hidden = false;
  var text = document.getElementById("filter-text");
  var severity = document.getElementById("filter-severity");
  var showIgnored = document.getElementById("filter-ignored");
  var count = document.getElementById("filter-count");
  function apply() {
    var q = text.value.trim().toLowerCase();
    var min = parseInt(severity.value, 10);
    var shown = 0;
    rows.forEach(function (r) {
      var ok = (!q || r.textContent.toLowerCase().indexOf(q) !== -1) &&
        parseInt(r.getAttribute("data-rank"), 10) >= min &&
        (showIgnored.checked || r.getAttribute("data-ignored") !== "1");
      r.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " shown";
  }
  [text, severity, showIgnored].forEach(function (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); });
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    var key = th.getAttribute("data-sort");
    if (!key) { return; }
    th.tabIndex = 0;
    th.classList.add("sortable");
    var dir = -1;
    function sort() {
      dir = -dir;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-key") || a.cells[col].textContent;
        var y = b.cells[col].getAttribute("data-key") || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return c * dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
  });
  apply();
}());
