// llmops view: keyboard review, live updates. Builds no HTML from data: textContent only.
(function () {
  "use strict";
  var body = document.body;
  var readOnly = body.getAttribute("data-read-only") === "1";
  var selected = -1;
  var touched = false;

  function items() { return Array.prototype.slice.call(document.querySelectorAll(".nav-item")); }
  function toast(text, bad) {
    var t = document.getElementById("toast");
    t.textContent = text; t.hidden = false; t.className = "toast" + (bad ? " bad" : "");
    clearTimeout(toast.timer); toast.timer = setTimeout(function () { t.hidden = true; }, 2500);
  }
  function select(i) {
    var list = items();
    if (!list.length) { return; }
    i = Math.max(0, Math.min(list.length - 1, i));
    if (selected >= 0 && list[selected]) { list[selected].classList.remove("selected"); }
    selected = i; touched = true;
    list[i].classList.add("selected");
    list[i].focus({preventScroll: true});
    list[i].scrollIntoView({block: "nearest"});
  }
  function localHref(el) {
    var href = el && el.getAttribute("data-href");
    return href && href.charAt(0) === "/" && href.charAt(1) !== "/" ? href : null;
  }
  function mark(el, label) {
    if (!el || !el.hasAttribute("data-review-kind")) { toast("nothing to mark here (a cell with repeats is reviewed per repeat: open it)", true); return; }
    if (readOnly) { toast("read-only: review marks are off", true); return; }
    var noteEl = el.querySelector("input.note");
    var payload = {
      kind: el.getAttribute("data-review-kind"), label: label, note: noteEl ? noteEl.value : "",
      run_id: el.getAttribute("data-run-id"), unit: el.getAttribute("data-unit"),
      trace_id: el.getAttribute("data-trace-id"), span_id: el.getAttribute("data-span-id")
    };
    fetch("/api/review", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-LLMOps-Review": "1"},
      body: JSON.stringify(payload)
    }).then(function (r) {
      return r.json().then(function (data) { return {ok: r.ok, data: data}; });
    }).then(function (res) {
      if (!res.ok) { toast(res.data.error || "could not save the mark", true); return; }
      var badge = el.querySelector("[data-field=mark]");
      if (badge) { badge.textContent = "reviewed: " + label; badge.className = "mark m-" + label; }
      toast("marked " + label + " · " + res.data.labelled + " labelled in " + res.data.path);
    }).catch(function () { toast("could not reach the server", true); });
  }
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest ? ev.target.closest(".mark-btn") : null;
    if (btn) { mark(btn.closest("[data-review-kind]"), btn.getAttribute("data-label")); return; }
    var row = ev.target.closest ? ev.target.closest("tr.nav-item") : null;
    if (row && ev.target.tagName !== "A" && localHref(row)) { window.location.href = localHref(row); }
  });
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target && ev.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var list = items();
    if (ev.key === "j") { select(selected + 1); ev.preventDefault(); }
    else if (ev.key === "k") { select(selected < 0 ? 0 : selected - 1); ev.preventDefault(); }
    else if ((ev.key === "p" || ev.key === "f") && selected >= 0) { mark(list[selected], ev.key === "p" ? "pass" : "fail"); ev.preventDefault(); }
    else if ((ev.key === "o" || ev.key === "Enter") && selected >= 0 && localHref(list[selected])) { window.location.href = localHref(list[selected]); }
    else if (ev.key === "?") { toast("j/k: next/previous · p/f: mark pass/fail · o or Enter: open · click a row to open"); }
  });

  function poll(url, every, handle) {
    function tick() {
      fetch(url, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data && handle(data) !== false) { setTimeout(tick, every); } })
        .catch(function () { setTimeout(tick, every * 3); });
    }
    setTimeout(tick, every);
  }
  var live = body.getAttribute("data-live");
  if (live === "runs") {
    var newest = parseFloat(body.getAttribute("data-newest") || "0");
    var note = document.getElementById("live-note");
    var running = Array.prototype.slice.call(document.querySelectorAll("tr[data-status=running]"))
      .map(function (tr) { return tr.getAttribute("data-run"); });
    if (note) { note.textContent = running.length ? "live: " + running.length + " run(s) in progress" : "live"; }
    poll("/api/live?runs=" + encodeURIComponent(running.join(",")), 2000, function (data) {
      if (data.newest > newest + 1e-6) { window.location.reload(); return false; }
      var reload = false;
      data.runs.forEach(function (p) {
        var tr = document.querySelector("tr[data-run=\"" + CSS.escape(p.run_id) + "\"]");
        if (!tr) { return; }
        tr.querySelector("[data-field=progress]").textContent = p.done + "/" + p.units;
        var o = tr.querySelector("[data-field=outcome]");
        o.textContent = p.outcome.replace("_", " "); o.className = "outcome o-" + p.outcome;
        if (p.status !== "running") { reload = true; }
      });
      if (reload && !touched) { window.location.reload(); return false; }
      return true;
    });
  } else if (live === "statistics") {
    poll("/api/compare/statistics" + window.location.search, 1500, function (data) {
      if (data.status === "computing") { return true; }
      window.location.reload(); return false;  // the statistics are cached now: the page shows them
    });
  } else if (live === "run") {
    var rid = body.getAttribute("data-run");
    var seq = parseInt(body.getAttribute("data-seq") || "0", 10);
    poll("/api/runs/" + encodeURIComponent(rid) + "/progress", 2000, function (p) {
      var el = document.getElementById("progress");
      if (el) { el.textContent = p.done + "/" + p.units + " units (live)"; }
      if ((p.last_seq !== seq || p.status !== "running") && !touched) { window.location.reload(); return false; }
      return p.status === "running";
    });
  }
})();
