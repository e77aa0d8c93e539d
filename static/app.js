// Namelab: small enhancements only; every page works without this file.
// Heatmaps: show the hovered, tapped or focused cell's details (its <title>) in the readout
// line; arrow keys move between cells (one tab stop per heatmap instead of 729).
(function () {
  "use strict";
  var readout = document.getElementById("readout");
  if (!readout) return;
  readout.textContent = "Hover, tap or focus (Tab, then the arrow keys) a cell for its details.";
  // Reserve the height of the longest text the line will show (monospace: the most letters),
  // so that showing a cell's details never moves the table under a finger or the pointer.
  var longest = readout.textContent;
  document.querySelectorAll("svg.heatmap .cell title").forEach(function (t) {
    if (t.textContent.length > longest.length) longest = t.textContent;
  });
  function reserve() {
    var shown = readout.textContent;
    readout.style.minHeight = "";
    readout.textContent = longest;
    var height = readout.getBoundingClientRect().height;
    readout.textContent = shown;
    readout.style.minHeight = height + "px";
  }
  reserve();
  window.addEventListener("resize", reserve);
  var active = null;
  function show(cell) {
    var title = cell.querySelector("title");
    if (!title) return;
    if (active) active.classList.remove("active");
    active = cell;
    cell.classList.add("active");
    readout.textContent = title.textContent;
  }
  function cellOf(ev) {
    return ev.target.closest && ev.target.closest(".cell");
  }
  var steps = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0],
                Home: [0, -1e9], End: [0, 1e9] };
  document.querySelectorAll("svg.heatmap .cells").forEach(function (group) {
    var cells = Array.prototype.slice.call(group.querySelectorAll(".cell"));
    var n = Math.round(Math.sqrt(cells.length));
    cells.forEach(function (c, i) { c.setAttribute("tabindex", i === 0 ? "0" : "-1"); });
    group.addEventListener("mouseover", function (ev) { var c = cellOf(ev); if (c) show(c); });
    group.addEventListener("click", function (ev) { var c = cellOf(ev); if (c) show(c); });
    group.addEventListener("focusin", function (ev) { var c = cellOf(ev); if (c) show(c); });
    group.addEventListener("keydown", function (ev) {
      var c = cellOf(ev), step = steps[ev.key];
      if (!c || !step) return;
      var i = cells.indexOf(c), row = Math.floor(i / n), col = i % n;
      row = Math.min(n - 1, Math.max(0, row + step[0]));
      col = Math.min(n - 1, Math.max(0, col + step[1]));
      var next = cells[row * n + col];
      ev.preventDefault();
      c.setAttribute("tabindex", "-1");
      next.setAttribute("tabindex", "0");
      next.focus();
    });
  });
})();
