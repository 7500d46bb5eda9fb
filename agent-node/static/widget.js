/* Outpost web-chat widget. No build step, no dependencies.
 *
 * Embed: <script src="https://<your node>/widget.js" data-outpost-agent="<agent id>" async></script>
 *
 * It talks only to the node that served it (never to the Outpost control plane). The
 * visitor token is kept in localStorage so a returning visitor sees their conversation.
 *
 * While the panel is closed, a visitor who has a conversation (a stored token) is still
 * polled for replies, more slowly: a reply from the team or the assistant shows an unread
 * badge on the launcher and a nudge above it. A visitor who never wrote sends nothing.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var agentId = script.getAttribute("data-outpost-agent");
  if (!agentId) { console.warn("Outpost widget: data-outpost-agent is missing"); return; }
  var base = new URL(script.src).origin;
  var api = base + "/widget/v1/" + encodeURIComponent(agentId);
  var storeKey = "outpost-visitor:" + base + ":" + agentId;
  /* The id of the newest message the visitor has had in front of them (the panel open). */
  var readKey = storeKey + ":read";
  var OPEN_POLL_MS = 4000, CLOSED_POLL_MS = 9000, MAX_BACKOFF = 5;
  var LAUNCH_TEXT = "Chat with us";

  var css =
    ":host{all:initial;font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2433}" +
    ".launcher{position:fixed;z-index:2147483000;right:20px;bottom:20px;border:0;border-radius:999px;padding:12px 18px;background:#2b59c3;color:#fff;font:inherit;font-weight:600;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.2)}" +
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #f4b400;outline-offset:2px}" +
    ".badge{position:absolute;top:-6px;right:-6px;box-sizing:border-box;min-width:22px;height:22px;padding:0 6px;border:2px solid #fff;border-radius:999px;background:#d92d20;color:#fff;font-size:12px;font-weight:700;line-height:18px;text-align:center}" +
    ".badge[hidden]{display:none}" +
    ".nudge{position:fixed;z-index:2147483000;right:20px;bottom:80px;max-width:min(280px,calc(100vw - 40px))}" +
    ".nudge button{display:block;box-sizing:border-box;min-height:44px;max-width:100%;border:1px solid #dde1ea;border-radius:12px 12px 4px 12px;padding:10px 14px;background:#fff;color:#1d2433;font:inherit;font-weight:600;text-align:left;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.18)}" +
    ".nudge button:hover{background:#f5f7fb}" +
    ".panel{position:fixed;z-index:2147483000;right:20px;bottom:80px;width:min(360px,calc(100vw - 40px));height:min(520px,calc(100vh - 120px));display:flex;flex-direction:column;background:#fff;border:1px solid #dde1ea;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.2);overflow:hidden}" +
    ".panel[hidden]{display:none}" +
    "header{display:flex;justify-content:space-between;align-items:center;gap:8px;padding:4px 4px 4px 14px;background:#2b59c3;color:#fff}" +
    "header h2{font-size:16px;margin:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}" +
    "header button{flex:none;display:flex;align-items:center;justify-content:center;box-sizing:border-box;min-width:44px;min-height:44px;padding:0;background:none;border:0;border-radius:8px;color:#fff;font:inherit;font-size:24px;cursor:pointer;line-height:1}" +
    "header button:hover{background:rgba(255,255,255,.15)}" +
    ".log{flex:1;overflow-y:auto;padding:12px;margin:0;list-style:none}" +
    ".log li{margin:6px 0;padding:8px 10px;border-radius:10px;max-width:85%;white-space:pre-wrap;word-wrap:break-word}" +
    ".log li.visitor{background:#2b59c3;color:#fff;margin-left:auto}.log li.agent,.log li.human{background:#eef1f7}" +
    ".log li.system{background:none;color:#5b6478;font-style:italic;font-size:13px;text-align:center;max-width:100%}" +
    ".who{display:block;font-size:12px;opacity:.75}" +
    ".quick{display:flex;flex-wrap:wrap;gap:6px;padding:0 12px 8px}.quick[hidden]{display:none}" +
    ".quick button{min-height:36px;border:1px solid #2b59c3;border-radius:999px;background:#fff;color:#2b59c3;font:inherit;font-size:14px;padding:4px 12px;cursor:pointer}" +
    ".quick button:hover{background:#eef1f7}" +
    "form{display:flex;gap:6px;padding:10px;border-top:1px solid #dde1ea}" +
    "textarea{flex:1;resize:none;font:inherit;padding:8px;border:1px solid #dde1ea;border-radius:8px;min-height:40px}" +
    "form button{border:0;border-radius:8px;background:#2b59c3;color:#fff;font:inherit;padding:0 14px;cursor:pointer}" +
    "form button[disabled]{opacity:.6;cursor:default}.status{font-size:12px;color:#b42318;padding:0 12px}" +
    /* Phones: the panel takes the whole screen, and the launcher steps aside while it is open. */
    "@media (max-width:480px){" +
    ".panel{top:0;right:0;bottom:0;left:0;inset:0;width:100%;height:100%;border:0;border-radius:0;box-shadow:none}" +
    ".launcher[aria-expanded=true]{display:none}" +
    "textarea{font-size:16px}" +
    "form{padding-bottom:max(10px,env(safe-area-inset-bottom))}" +
    "}";

  var host = document.createElement("div");
  host.setAttribute("data-outpost-widget", "");
  var root = host.attachShadow({ mode: "open" });
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    var style = document.createElement("style");
    style.textContent = css;
    root.appendChild(style);
  }

  function el(tag, attrs, text) {
    var n = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) n.setAttribute(k, attrs[k]);
    if (text) n.textContent = text;
    return n;
  }

  var launcher = el("button", { "class": "launcher", type: "button", "aria-expanded": "false", "aria-controls": "outpost-panel" }, LAUNCH_TEXT);
  var badge = el("span", { "class": "badge", role: "img", hidden: "" });
  launcher.appendChild(badge);
  /* A live region that stays in place; its content (a button that opens the chat) comes and goes. */
  var nudge = el("div", { "class": "nudge", role: "status" });
  var panel = el("section", { "class": "panel", id: "outpost-panel", role: "dialog", "aria-label": "Chat", hidden: "" });
  var header = el("header");
  var title = el("h2", {}, "Chat");
  var close = el("button", { type: "button", "aria-label": "Close chat" }, "×");
  header.appendChild(title); header.appendChild(close);
  var log = el("ol", { "class": "log", role: "log", "aria-live": "polite", "aria-relevant": "additions" });
  var status = el("p", { "class": "status", role: "status" });
  /* Quick replies of the booking flow: tapping one sends its text. */
  var quick = el("div", { "class": "quick", role: "group", "aria-label": "Suggested replies", hidden: "" });
  var form = el("form");
  var input = el("textarea", { rows: "2", maxlength: "2000", "aria-label": "Your message", placeholder: "Write a message…" });
  var send = el("button", { type: "submit" }, "Send");
  form.appendChild(input); form.appendChild(send);
  panel.appendChild(header); panel.appendChild(log); panel.appendChild(quick); panel.appendChild(status); panel.appendChild(form);
  root.appendChild(panel); root.appendChild(nudge); root.appendChild(launcher);

  var visitor = null, lastId = 0, started = false, ready = false, busy = false, syncing = false, pollTimer = null, agentName = "Assistant";
  var failures = 0, unread = 0, unreadFrom = null;
  var seen = {};
  try { visitor = window.localStorage.getItem(storeKey); } catch (e) { visitor = null; }

  function label(from) {
    return from === "visitor" ? "You" : from === "human" ? "Team" : from === "agent" ? agentName : "";
  }

  function add(from, text, id) {
    if (id && seen[id]) return null;
    if (id) { seen[id] = true; if (id > lastId) lastId = id; }
    var li = el("li", { "class": from });
    var who = label(from);
    if (who) li.appendChild(el("span", { "class": "who" }, who));
    var body = el("span", {}, text);
    li.appendChild(body);
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
    return body;
  }

  /* The token arrives with the first message (nothing is stored for a mere page view). */
  function remember(token) {
    visitor = token || null;
    try {
      if (visitor) window.localStorage.setItem(storeKey, visitor);
      else { window.localStorage.removeItem(storeKey); window.localStorage.removeItem(readKey); }
    } catch (e) { /* private mode: the chat works for this page only */ }
  }

  function storedRead() {
    var v = null;
    try { v = window.localStorage.getItem(readKey); } catch (e) { v = null; }
    var n = v === null ? NaN : parseInt(v, 10);
    return isNaN(n) ? null : n;
  }

  function saveRead() {
    if (!visitor) return;
    try { window.localStorage.setItem(readKey, String(lastId)); } catch (e) { /* ignore */ }
  }

  /* ---- unread badge and nudge ---- */

  function showUnread() {
    if (!unread) {
      badge.hidden = true;
      badge.textContent = "";
      badge.removeAttribute("aria-label");
      launcher.removeAttribute("aria-label");
      nudge.textContent = "";
      return;
    }
    badge.textContent = unread > 99 ? "99+" : String(unread);
    badge.setAttribute("aria-label", unread + (unread === 1 ? " unread message" : " unread messages"));
    badge.hidden = false;
    launcher.setAttribute("aria-label", LAUNCH_TEXT + " (" + unread + " unread)");
    var text = unreadFrom === "human" ? "New reply from the team" : "New reply";
    var current = nudge.firstChild;
    if (!current || current.textContent !== text) {
      nudge.textContent = "";
      nudge.appendChild(el("button", { type: "button" }, text));
    }
  }

  /* A reply arrived while the panel is closed (a team member's reply outranks the assistant's). */
  function notify(from) {
    unread += 1;
    if (from === "human" || unreadFrom !== "human") unreadFrom = from;
    showUnread();
  }

  function markRead() {
    unread = 0; unreadFrom = null;
    showUnread();
    saveRead();
  }

  /* After messages were added: read if the visitor can see them. */
  function settle() { if (!panel.hidden) saveRead(); }

  function isReply(from) { return from === "agent" || from === "human"; }

  /* Messages from the node; `skipOwn` (after a send) marks the visitor's and the
   * assistant's messages as known without showing them twice. */
  function receive(messages, skipOwn) {
    messages.forEach(function (m) {
      if (skipOwn && (m.from === "visitor" || m.from === "agent")) {
        seen[m.id] = true; if (m.id > lastId) lastId = m.id;
        return;
      }
      if (add(m.from, m.text, m.id) && panel.hidden && isReply(m.from)) notify(m.from);
    });
    settle();
  }

  function headers() {
    var h = { "Content-Type": "application/json" };
    if (visitor) h.Authorization = "Bearer " + visitor;
    return h;
  }

  function fail(res) {
    return res.json().then(function (j) { status.textContent = j.message || "Something went wrong."; },
      function () { status.textContent = "Something went wrong."; });
  }

  /* Loads the conversation: on opening, or at page load for a visitor who has one. */
  function start() {
    started = true;
    status.textContent = "";
    return fetch(api + "/session", { method: "POST", headers: headers(), body: JSON.stringify(visitor ? { visitor: visitor } : {}) })
      .then(function (res) {
        if (!res.ok) { started = false; return fail(res); }
        return res.json().then(function (s) {
          remember(s.visitor);
          agentName = s.agent || agentName;
          title.textContent = agentName;
          if (s.greeting) add("agent", s.greeting);
          var read = storedRead();
          s.messages.forEach(function (m) {
            if (add(m.from, m.text, m.id) && panel.hidden && read !== null && m.id > read && isReply(m.from)) notify(m.from);
          });
          if (read === null || !panel.hidden) saveRead();
          ready = true;
          schedule();
        });
      })
      .catch(function () { status.textContent = "The chat is unreachable. Please try again later."; started = false; });
  }

  /* ---- polling: every 4 s while open, every 9 s while closed, only with a visitor token ---- */

  function schedule(delay) {
    clearTimeout(pollTimer);
    /* Not before the conversation is loaded (its newest id), nor for a mere page view. */
    if (!visitor || !ready) return;
    if (delay === undefined) {
      delay = (panel.hidden ? CLOSED_POLL_MS : OPEN_POLL_MS) * Math.pow(2, failures);
    }
    pollTimer = setTimeout(tick, delay);
  }

  function tick() {
    if (!visitor) return;
    /* A send in flight, or a tab in the background: look again later. */
    if (busy || syncing || document.hidden) { schedule(); return; }
    fetch(api + "/messages?after=" + lastId, { headers: headers() })
      .then(function (res) {
        if (res.status === 401) return false; /* the conversation is gone: stop */
        if (!res.ok) throw new Error("poll " + res.status);
        return res.json().then(function (j) {
          failures = 0;
          receive(j.messages, false);
          return true;
        });
      })
      .catch(function () { failures = Math.min(failures + 1, MAX_BACKOFF); return true; })
      .then(function (again) { if (again) schedule(); });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) schedule(300);
  });

  /* Reads the text/event-stream answer: `delta` events, then `done`, `queued` or `error`. */
  function readStream(res, bubble) {
    var reader = res.body.getReader(), decoder = new TextDecoder(), buffer = "";
    function handle(block) {
      var event = "message", data = "";
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) event = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
      });
      if (!data) return;
      var j = JSON.parse(data);
      if (event === "visitor") { remember(j.visitor); schedule(); }
      else if (event === "delta") { bubble.textContent += j.text; log.scrollTop = log.scrollHeight; }
      else if (event === "done") {
        bubble.textContent = j.text;
        if (j.id) { seen[j.id] = true; if (j.id > lastId) lastId = j.id; }
        offer(j.quick_replies || []);
        if (panel.hidden) notify("agent"); else settle();
      }
      else if (event === "queued") { bubble.parentNode.remove(); add("system", j.message); }
      else if (event === "error") { status.textContent = j.message; }
    }
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) return;
        buffer += decoder.decode(r.value, { stream: true }).replace(/\r\n/g, "\n");
        var i;
        while ((i = buffer.indexOf("\n\n")) >= 0) { handle(buffer.slice(0, i)); buffer = buffer.slice(i + 2); }
        return pump();
      });
    }
    return pump();
  }

  function offer(replies) {
    while (quick.firstChild) quick.removeChild(quick.firstChild);
    replies.forEach(function (r) {
      var b = el("button", { type: "button" }, r);
      b.addEventListener("click", function () {
        if (busy) return;
        input.value = r;
        form.requestSubmit ? form.requestSubmit() : send.click();
      });
      quick.appendChild(b);
    });
    quick.hidden = replies.length === 0;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text || busy) return;
    offer([]);
    busy = true; send.disabled = true; status.textContent = "";
    input.value = "";
    add("visitor", text);
    var bubble = add("agent", "");
    fetch(api + "/messages", { method: "POST", headers: headers(), body: JSON.stringify({ text: text }) })
      .then(function (res) {
        if (!res.ok) { bubble.parentNode.remove(); return fail(res); }
        return readStream(res, bubble);
      })
      .catch(function () { status.textContent = "Your message could not be sent. Please try again."; })
      .then(function () { busy = false; send.disabled = false; if (!panel.hidden) input.focus(); lastIdSync(); });
  });

  /* The visitor's own message was stored before the answer; fetch ids so polls skip them. */
  function lastIdSync() {
    if (!visitor) return;
    syncing = true;
    fetch(api + "/messages?after=" + lastId, { headers: headers() })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (j) { if (j) receive(j.messages, true); })
      .catch(function () { /* ignore */ })
      .then(function () { syncing = false; });
  }

  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit ? form.requestSubmit() : send.click(); }
  });

  function toggle(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      markRead();
      log.scrollTop = log.scrollHeight;
      if (!started) start(); else schedule();
      input.focus();
    } else {
      schedule();
      launcher.focus();
    }
  }
  launcher.addEventListener("click", function () { toggle(panel.hidden); });
  nudge.addEventListener("click", function () { toggle(true); });
  close.addEventListener("click", function () { toggle(false); });
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") toggle(false); });

  (document.body || document.documentElement).appendChild(host);
  /* A returning visitor: load the conversation quietly so replies are noticed while closed. */
  if (visitor) start();
})();
