// The note view: span actions, adding a selected span, keyboard shortcuts. Sends offsets, never text.
(function () {
  "use strict";
  const note = document.getElementById("note");
  if (!note) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const rows = Array.from(document.querySelectorAll("#spans tbody tr"));
  const status = document.getElementById("status");
  let current = Math.min(parseInt((location.hash.match(/^#s(\d+)$/) || [0, "0"])[1], 10), Math.max(rows.length - 1, 0));
  let selection = null;

  function post(path, body) {
    body.digest = note.dataset.digest;
    body.strategy = note.dataset.strategy;
    return fetch(`/api/note/${note.dataset.note}/${path}`, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
    }).then(async (r) => {
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) { status.textContent = answer.error || `failed (${r.status})`; throw new Error(status.textContent); }
      return answer;
    });
  }
  function reload() { location.hash = `s${current}`; location.reload(); }
  function spanOf(row) {
    return {field: row.dataset.field, start: parseInt(row.dataset.start, 10), end: parseInt(row.dataset.end, 10)};
  }
  function act(row, action, extra) { return post("decide", Object.assign(spanOf(row), {action}, extra || {})).then(reload); }
  function highlight() {
    document.querySelectorAll(".current").forEach((e) => e.classList.remove("current"));
    const row = rows[current];
    if (!row) return;
    row.classList.add("current");
    document.querySelectorAll(`mark[data-i="${row.dataset.i}"]`).forEach((m) => m.classList.add("current"));
  }

  rows.forEach((row, i) => {
    row.querySelector(".confirm").addEventListener("click", () => { current = i; act(row, "confirm"); });
    row.querySelector(".reject").addEventListener("click", () => { current = i; act(row, "reject"); });
    row.querySelector(".retype").addEventListener("change", (e) => { current = i; act(row, "retype", {new_type: e.target.value}); });
    row.querySelector(".retier").addEventListener("change", (e) => {
      current = i; act(row, "retier", {new_tier: parseInt(e.target.value, 10)});
    });
    row.addEventListener("click", () => { current = i; highlight(); });
  });

  // Offsets in code points: each segment element carries its start; the selection's text node offset is in UTF-16.
  function pointOf(node, offset) {
    const el = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
    const seg = el && el.closest(".seg");
    const box = seg && seg.closest(".text[data-field]");
    if (!seg || !box) return null;
    const prefix = node.nodeType === Node.TEXT_NODE ? node.data.slice(0, offset) : "";
    return {field: box.dataset.field, at: parseInt(seg.dataset.start, 10) + Array.from(prefix).length};
  }
  document.addEventListener("selectionchange", () => {
    const sel = window.getSelection();
    if (!sel || sel.isCollapsed || sel.rangeCount === 0) return;
    const a = pointOf(sel.anchorNode, sel.anchorOffset), b = pointOf(sel.focusNode, sel.focusOffset);
    if (!a || !b || a.field !== b.field || a.at === b.at) return;
    selection = {field: a.field, start: Math.min(a.at, b.at), end: Math.max(a.at, b.at), text: sel.toString()};
    document.getElementById("add-range").textContent = `${selection.field} ${selection.start}–${selection.end}`;
    document.getElementById("add-text").textContent = selection.text;
    document.getElementById("add-panel").classList.remove("hidden");
  });
  function addSelection() {
    if (!selection) { status.textContent = "select text in the original note first"; return; }
    post("decide", {action: "add", field: selection.field, start: selection.start, end: selection.end,
                    new_type: document.getElementById("add-type").value,
                    new_tier: parseInt(document.getElementById("add-tier").value, 10)}).then(reload);
  }
  document.getElementById("add-button").addEventListener("click", addSelection);
  document.getElementById("add-cancel").addEventListener("click", () => {
    selection = null; document.getElementById("add-panel").classList.add("hidden");
  });
  const undo = () => post("undo", {}).then(reload);
  const done = () => post("done", {}).then((r) => { status.textContent = `finished (${r.confirmed} confirmed)`; location.href = "/"; });
  const comment = () => post("decide", {action: "comment", comment: document.getElementById("comment").value})
    .then(() => { status.textContent = "comment saved"; });
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("done").addEventListener("click", done);
  document.getElementById("save-comment").addEventListener("click", comment);

  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
    const row = rows[current];
    const keys = {
      j: () => { current = Math.min(current + 1, rows.length - 1); highlight(); },
      k: () => { current = Math.max(current - 1, 0); highlight(); },
      c: () => row && act(row, "confirm"),
      x: () => row && act(row, "reject"),
      t: () => row && row.querySelector(".retype").focus(),
      1: () => row && act(row, "retier", {new_tier: 1}),
      2: () => row && act(row, "retier", {new_tier: 2}),
      3: () => row && act(row, "retier", {new_tier: 3}),
      a: addSelection, u: undo, d: done,
      m: () => document.getElementById("comment").focus(),
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
  highlight();
}());
