import { createHash } from "node:crypto";
import { relativeTime } from "../core/relative-time.js";

/**
 * The dashboard's stylesheet and script, served by the daemon itself (CSP `default-src
 * 'self'` forbids inline styles and scripts, and the page loads nothing from elsewhere).
 * No build step: they are written as they are sent. Every page works without the script;
 * it adds the viewer's time zone, live updates over /events, and actions without a reload.
 */

export const STYLESHEET = `
:root{color-scheme:light dark;--bg:#f7f7f8;--fg:#1b1d21;--muted:#5d636e;--line:#dcdee3;--card:#fff;--accent:#2357c5;--ok:#17803d;--bad:#c0262d;--warn:#a15c00;--run:#2357c5;--idle:#6b7280;--pend:#7c3aed;--focus:#f0b400}
@media (prefers-color-scheme:dark){:root{--bg:#15171b;--fg:#e6e7ea;--muted:#9aa1ad;--line:#30343b;--card:#1d2025;--accent:#7aa2ff;--ok:#4cc77a;--bad:#ff6b6b;--warn:#f0a43a;--run:#7aa2ff;--idle:#8b93a1;--pend:#b794f6}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
a{color:var(--accent)}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-999px;top:0;background:var(--card);padding:.5em 1em;z-index:2}
.skip:focus{left:.5em}
header.top{display:flex;flex-wrap:wrap;gap:.5em 1.5em;align-items:center;padding:.6em 1.2em;background:var(--card);border-bottom:1px solid var(--line)}
header.top .brand{font-weight:700;text-decoration:none;color:var(--fg)}
header.top nav{display:flex;gap:1em;flex-wrap:wrap;align-items:center;margin-left:auto}
header.top form{margin:0}
main{max-width:1280px;margin:0 auto;padding:1em 1.2em 3em}
h1{font-size:1.45em;margin:.3em 0 .2em;overflow-wrap:anywhere}
h2{font-size:1.1em;margin:1.6em 0 .5em}
.muted{color:var(--muted)}
.small{font-size:.86em}
.crumbs{font-size:.9em;margin:.2em 0}
.bar{display:flex;flex-wrap:wrap;gap:.6em;align-items:center;margin:.6em 0}
.filters{display:flex;flex-wrap:wrap;gap:.5em;align-items:end;margin:.8em 0}
.filters label{display:flex;flex-direction:column;font-size:.85em;color:var(--muted);gap:.15em}
input,select,button{font:inherit}
input[type=search],input[type=password],select{padding:.35em .5em;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--fg);min-height:2.2em}
button,.button{display:inline-flex;align-items:center;gap:.3em;padding:.3em .75em;min-height:2.2em;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--fg);cursor:pointer;text-decoration:none;white-space:nowrap}
button:hover,.button:hover{border-color:var(--accent)}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.danger{color:var(--bad)}
form[aria-busy=true] button{opacity:.55;cursor:progress}
th.align-right,td.align-right{text-align:right}
th.align-center,td.align-center{text-align:center}
form.inline{display:inline;margin:0}
div.actions{display:flex;flex-wrap:wrap;gap:.35em}
td.actions{width:1%}
td.actions div.actions{flex-wrap:nowrap}
.table-wrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.5em .65em;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.8em;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;white-space:nowrap}
tbody tr:last-child td{border-bottom:0}
td.name a{font-weight:600;overflow-wrap:anywhere}
td .prompt{display:block;max-width:26em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-size:.86em}
.badge{display:inline-block;padding:.05em .55em;border-radius:999px;font-size:.82em;font-weight:600;border:1px solid currentColor;white-space:nowrap}
.st-completed,.state-active{color:var(--ok)}
.st-failed,.st-timed_out{color:var(--bad)}
.st-running{color:var(--run)}
.st-canceled,.st-interrupted,.state-paused{color:var(--warn)}
.st-skipped,.st-declined,.st-missed,.state-completed,.st-none{color:var(--idle)}
.state-pending_approval{color:var(--pend)}
.strip{display:inline-flex;gap:2px;align-items:flex-end;height:1.2em;vertical-align:middle}
.strip i{display:block;width:6px;height:100%;border-radius:1px;background:currentColor}
.strip i.st-skipped,.strip i.st-declined,.strip i.st-missed{height:45%}
.strip i.st-running{animation:pulse 1.2s ease-in-out infinite}
@media (prefers-reduced-motion:reduce){.strip i.st-running{animation:none}}
@keyframes pulse{50%{opacity:.35}}
time[title]{text-decoration:underline dotted var(--line);text-underline-offset:3px;cursor:help;white-space:nowrap}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1.2em;margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8em 1em}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;overflow-wrap:anywhere}
pre{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.7em .9em;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
pre.error{border-color:var(--bad)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:.92em}
.md{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.4em 1.1em;overflow-wrap:anywhere}
.md pre{white-space:pre}
.md table{display:block;overflow-x:auto;width:auto}
.md blockquote{margin:.5em 0;padding-left:1em;border-left:3px solid var(--line);color:var(--muted)}
.md img{display:none}
.panel{margin:.6em 0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.6em .9em .3em}
.panel figcaption{margin-bottom:.3em}
.chart{display:block;overflow:visible;margin:.2em 0}
.chart text{fill:var(--muted);font-size:11px}
.chart .lane-label{fill:var(--fg);font-size:12px;font-weight:600}
.chart .grid{stroke:var(--line);stroke-width:1}
.chart .grid.now{stroke:var(--accent);stroke-dasharray:3 3}
.chart .base{stroke:var(--line);stroke-width:1}
.chart a:focus-visible rect{stroke:var(--focus);stroke-width:2}
.m-completed{fill:var(--ok)}
.m-failed,.m-timed_out{fill:var(--bad)}
.m-canceled,.m-interrupted{fill:var(--warn)}
.m-skipped,.m-declined,.m-missed{fill:var(--idle)}
.m-running{fill:var(--run)}
.m-due{fill:var(--card);stroke:var(--run);stroke-width:1.5}
.m-cost{fill:var(--accent)}
.legend{display:flex;flex-wrap:wrap;gap:.2em 1em;list-style:none;padding:0;margin:.2em 0;font-size:.82em;color:var(--muted)}
.legend svg{vertical-align:-1px;margin-right:.35em}
.notice{padding:.6em .9em;border-radius:8px;border:1px solid var(--line);background:var(--card)}
.notice.bad{border-color:var(--bad)}
#flash:empty{display:none}
#flash{position:sticky;top:0;z-index:1;margin:.5em 0}
.pager{display:flex;gap:1em;margin:1em 0;flex-wrap:wrap}
.login{max-width:26em;margin:3em auto;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1.2em 1.4em}
.login label{display:block;margin:.8em 0 .3em}
.login input{width:100%}
.login button{margin-top:1em}
@media (max-width:760px){
  body{font-size:16px}
  main{padding:.6em .7em 2em}
  header.top{padding:.5em .7em}
  header.top nav{margin-left:0}
  .table-wrap.cards{background:none;border:0;overflow:visible}
  table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}
  table.cards thead{display:none}
  table.cards tr{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:0 0 .6em;padding:.35em .2em}
  table.cards td{border:0;padding:.2em .6em;display:flex;gap:.8em;align-items:baseline}
  table.cards td>div{flex:1;min-width:0}
  table.cards td.actions{width:100%}
  table.cards td.actions div.actions{flex-wrap:wrap}
  table.cards td::before{content:attr(data-label);flex:0 0 6.2em;font-size:.78em;text-transform:uppercase;letter-spacing:.03em;color:var(--muted)}
  table.cards td.name::before,table.cards td.actions::before{content:none}
  table.cards td.name{font-size:1.05em;display:block}
  table.cards td .prompt{max-width:none;white-space:normal}
  table.cards td.actions{padding-top:.4em}
  dl.facts{gap:.35em .9em;padding:.7em .8em}
  .chart .minor{display:none}
  button,.button{min-height:2.6em;padding:.35em .9em}
}
`;

export const SCRIPT = `"use strict";
(function () {
  var body = document.body;
  var watch = body.getAttribute("data-watch") || "";
  var viewerTz = "UTC";
  try { viewerTz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) {}
  var local = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  // The server's own words for a time (src/core/relative-time.ts), so that both say the same.
  var relativeTime = (${relativeTime.toString()});

  // Every time is relative words with the exact time in its title: keep the words current,
  // and add the viewer's zone to the title when it is not the job's.
  function localise(root) {
    var times = root.querySelectorAll("time[datetime][data-tz]");
    var now = Date.now();
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      t.textContent = relativeTime(d.getTime(), now);
      if (t.hasAttribute("data-local") || t.getAttribute("data-tz") === viewerTz) continue;
      t.setAttribute("data-local", "");
      t.title = t.title + " · " + local.format(d) + " your time (" + viewerTz + ")";
    }
  }
  setInterval(function () { localise(document); }, 20000);

  // What the server last sent for each live part, to replace only what changed.
  var served = new Map();
  function remember(root) {
    var live = root.querySelectorAll("[data-live]");
    for (var i = 0; i < live.length; i++) if (live[i].id) served.set(live[i].id, live[i].outerHTML);
  }
  remember(document);
  localise(document);

  function focusKey() {
    var a = document.activeElement;
    if (!a || a === body) return null;
    return a.getAttribute("data-key") ? '[data-key="' + a.getAttribute("data-key") + '"]' : a.id ? "#" + CSS.escape(a.id) : null;
  }

  function childIds(el) {
    var ids = [];
    for (var i = 0; i < el.children.length; i++) ids.push(el.children[i].id);
    return ids.join(" ");
  }

  // The control that was used last: an action's button is replaced by its refreshed row.
  var lastUsed = null;
  function swap(doc) {
    var key = focusKey() || lastUsed;
    lastUsed = null;
    var lists = document.querySelectorAll("[data-live-list]");
    for (var i = 0; i < lists.length; i++) {
      var fresh = doc.getElementById(lists[i].id);
      if (fresh && childIds(fresh) !== childIds(lists[i])) {
        remember(fresh);
        lists[i].replaceWith(document.importNode(fresh, true));
      }
    }
    var live = document.querySelectorAll("[data-live]");
    for (var j = 0; j < live.length; j++) {
      var el = live[j];
      var next = doc.getElementById(el.id);
      if (!next || served.get(el.id) === next.outerHTML) continue;
      served.set(el.id, next.outerHTML);
      remember(next);
      var copy = document.importNode(next, true);
      el.replaceWith(copy);
    }
    localise(document);
    if (key && (!document.activeElement || document.activeElement === body)) {
      var target = document.querySelector(key);
      if (target) target.focus({ preventScroll: true });
    }
    body.setAttribute("data-refreshed-at", String(Date.now()));
  }

  var busy = false, again = false, timer = null, last = 0;
  // The jobs page is the costly one to redraw; every other page follows changes at once.
  var gap = watch === "all" ? 500 : 150;
  function refresh() {
    timer = null;
    if (busy) { again = true; return; }
    busy = true;
    last = Date.now();
    fetch(location.href, { headers: { accept: "text/html" }, credentials: "same-origin", cache: "no-store" })
      .then(function (res) {
        if (res.status === 401) { location.reload(); return null; }
        return res.ok ? res.text() : null;
      })
      .then(function (text) { if (text) swap(new DOMParser().parseFromString(text, "text/html")); })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
  }
  function schedule() {
    if (timer) return;
    timer = setTimeout(refresh, Math.max(25, last + gap - Date.now()));
  }

  function relevant(ev) {
    if (watch === "all") return ev.kind === "job" ? ev.change !== "updated" || !!document.getElementById("job-" + ev.job_id) : !!document.getElementById("job-" + ev.job_id);
    if (watch.indexOf("job:") === 0) return ev.job_id === watch.slice(4);
    if (watch.indexOf("run:") === 0) return ev.run_id === watch.slice(4) || (ev.kind === "job" && ev.job_id === body.getAttribute("data-job"));
    return false;
  }

  if (watch && window.EventSource) {
    var opened = false;
    var es = new EventSource("/events");
    es.addEventListener("change", function (e) {
      try { if (relevant(JSON.parse(e.data))) schedule(); } catch (err) {}
    });
    // After a reconnect (the daemon restarted) the page may have missed changes.
    es.addEventListener("open", function () { if (opened) schedule(); opened = true; });
  }

  var flash = document.getElementById("flash");
  function say(text, bad, href) {
    if (!flash) return;
    flash.className = "notice" + (bad ? " bad" : "");
    flash.textContent = text;
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = " Open it.";
      flash.appendChild(a);
    }
  }

  // Actions without a reload: the same POST, answered in JSON; the page then refreshes its parts.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.matches || !form.matches("form[data-action]")) return;
    e.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    var button = form.querySelector("button");
    // Not disabled: a disabled button loses the keyboard focus.
    form.setAttribute("aria-busy", "true");
    lastUsed = focusKey();
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (answer) {
          say(answer.message || (res.ok ? "Done." : "Failed (HTTP " + res.status + ")."), !res.ok, answer.location);
        });
      })
      .catch(function (err) { say("The daemon did not answer: " + err.message, true); })
      .then(function () {
        form.removeAttribute("aria-busy");
        if (!lastUsed) lastUsed = focusKey();
        refresh();
      });
  });
})();
`;

const version = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 12);
export const STYLESHEET_PATH = `/assets/dashboard.css?v=${version(STYLESHEET)}`;
export const SCRIPT_PATH = `/assets/dashboard.js?v=${version(SCRIPT)}`;

export const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="14" fill="#2357c5"/><path d="M16 8v8l6 4" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round"/></svg>`;
