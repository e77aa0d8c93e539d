// Namelab: small enhancements only; every page works without this file.
// Heatmaps: show the hovered or tapped cell's details (its <title>) in the readout line.
(function () {
  "use strict";
  var readout = document.getElementById("readout");
  if (!readout) return;
  readout.textContent = "Hover or tap a cell for its details.";
  var active = null;
  function show(cell) {
    var title = cell.querySelector("title");
    if (!title) return;
    if (active) active.classList.remove("active");
    active = cell;
    cell.classList.add("active");
    readout.textContent = title.textContent;
  }
  document.querySelectorAll("svg.heatmap .cells").forEach(function (cells) {
    cells.addEventListener("mouseover", function (ev) {
      var cell = ev.target.closest && ev.target.closest(".cell");
      if (cell) show(cell);
    });
    cells.addEventListener("click", function (ev) {
      var cell = ev.target.closest && ev.target.closest(".cell");
      if (cell) show(cell);
    });
  });
})();
