// gastown dashboard: live updates over Server-Sent Events. No framework, no build step.
// Every piece of outside text is set with textContent; the only HTML inserted is the
// server's own autoescaped fragments. The page works without this file (no live updates).
"use strict";

(function () {
  const body = document.body;
  const streamUrl = body.dataset.stream;
  const live = document.getElementById("live");

  function setLive(state, text) {
    if (!live) return;
    live.dataset.state = state;
    live.textContent = text;
  }

  function localTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) el.textContent = when.toLocaleTimeString([], { hour12: false });
    }
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function addEvents(events) {
    const list = document.getElementById("events");
    if (!list) return;
    const issue = list.dataset.issue;
    const problemsOnly = list.dataset.problems === "1";
    const max = parseInt(list.dataset.max || "50", 10);
    for (const e of events) {
      if (issue && e.issue !== issue) continue;
      if (problemsOnly && !e.problem) continue;
      const tr = document.createElement("tr");
      tr.className = "fresh kind-" + e.kind.replace(/[^a-z_-]/g, "") + (e.problem ? " problem" : "");
      const time = document.createElement("time");
      time.setAttribute("datetime", new Date(e.at * 1000).toISOString());
      time.textContent = new Date(e.at * 1000).toLocaleTimeString([], { hour12: false });
      const timeCell = cell("", "time");
      timeCell.append(time);
      tr.append(timeCell, cell(e.kind, "kind"));
      const where = cell("");
      if (e.rig && e.polecat) {
        const a = document.createElement("a");
        a.href = "/agents/" + encodeURIComponent(e.rig) + "/" + encodeURIComponent(e.polecat);
        a.textContent = e.rig + "/" + e.polecat;
        where.append(a);
      } else {
        where.textContent = e.rig || "-";
      }
      tr.append(where, cell(e.issue || "-", "id"), cell(e.message, "msg"));
      list.prepend(tr);
    }
    while (list.rows.length > max) list.deleteRow(list.rows.length - 1);
    const empty = document.getElementById("events-empty");
    if (empty && list.rows.length) empty.remove();
  }

  function swapFragment(id, html) {
    const target = document.getElementById(id);
    if (!target) return;
    const focused = document.activeElement && target.contains(document.activeElement) ? document.activeElement.id : null;
    const template = document.createElement("template");
    template.innerHTML = html;
    localTimes(template.content);
    target.replaceChildren(template.content);
    if (focused) {
      const again = document.getElementById(focused);
      if (again) again.focus();
    }
  }

  function appendLog(lines) {
    const log = document.getElementById("log");
    if (!log) return;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(document.createTextNode(lines.join("\n") + "\n"));
    const extra = log.textContent.length - 400000;
    if (extra > 0) log.textContent = log.textContent.slice(extra);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function notice(level, text) {
    const box = document.getElementById("notices");
    if (!box) return;
    const p = document.createElement("p");
    p.className = "notice " + (level === "error" ? "notice-error" : "notice-ok");
    p.textContent = text;
    box.prepend(p);
    while (box.children.length > 4) box.lastElementChild.remove();
  }

  localTimes(document);
  const log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;
  if (!streamUrl || !window.EventSource) return;

  const source = new EventSource(streamUrl);
  const data = (event) => JSON.parse(event.data);
  source.addEventListener("open", () => setLive("live", "live"));
  source.addEventListener("error", () => setLive("down", source.readyState === EventSource.CLOSED ? "offline" : "reconnecting…"));
  source.addEventListener("events", (event) => addEventsSafely(data(event)));
  source.addEventListener("fragment", (event) => { const f = data(event); swapFragment(f.id, f.html); });
  source.addEventListener("log", (event) => appendLog(data(event)));
  let lastNotice = 0;  // a reconnecting stream replays the page's notices: show each once
  source.addEventListener("notice", (event) => {
    const n = data(event);
    if (n.n !== undefined && n.n <= lastNotice) return;
    if (n.n !== undefined) lastNotice = n.n;
    notice(n.level, n.text);
  });
  source.addEventListener("reload", () => { source.close(); window.location.reload(); });
  source.addEventListener("bye", () => { source.close(); setLive("down", "server stopped"); });

  function addEventsSafely(events) {
    try { addEvents(events); } catch (err) { console.error(err); }
  }
})();
