// Namelab /train: small enhancements only; the page works without this file (its form posts,
// a running job's page reloads itself every few seconds).
// - The training token (when the server asks for one) is asked once per tab: kept in
//   sessionStorage, filled into the forms and its field folded away.
// - A running job's page follows /api/train/{id}/events and swaps in its live part
//   (GET /train/{id}/live: the numbers and the loss curves, drawn by the server) as it changes.
(function () {
  "use strict";
  var KEY = "namelab-train-token";
  var refused = document.getElementById("error-token");
  if (refused) sessionStorage.removeItem(KEY);
  document.querySelectorAll("input[name=token]").forEach(function (input) {
    var stored = sessionStorage.getItem(KEY);
    if (stored && !refused) {
      input.value = stored;
      input.closest("label").hidden = true;
    }
    input.form.addEventListener("submit", function () {
      if (input.value) sessionStorage.setItem(KEY, input.value);
    });
  });

  var live = document.getElementById("job-live");
  if (!live || live.dataset.settled === "1" || !window.EventSource) return;
  var busy = false, again = false, after = null, polls = 0, FINAL = ["done", "failed", "cancelled", "interrupted"];
  function settled() {
    var facts = live.querySelector("[data-settled]");
    return facts && facts.dataset.settled === "1";
  }
  function refresh(then) {  // one fetch at a time; a later ask (and its `then`) runs after it
    if (busy) { again = true; after = then || after; return; }
    busy = true;
    fetch(live.dataset.live, {cache: "no-store"}).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html !== null) live.innerHTML = html;
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) {
        var next = after || then;
        again = false; after = null;
        refresh(next);
      } else if (then) then();
    });
  }
  function untilSettled() {  // a done job's model is served a moment after the job ends
    if (settled()) {
      document.querySelectorAll(".cancel-form").forEach(function (f) { f.hidden = true; });
      return;
    }
    if (++polls <= 60) setTimeout(function () { refresh(untilSettled); }, 1000);
  }
  var events = new EventSource(live.dataset.events);
  events.onmessage = function (e) {
    var job = JSON.parse(e.data);
    if (FINAL.indexOf(job.state) >= 0) {
      events.close();
      refresh(untilSettled);
    } else {
      refresh();
    }
  };
})();
