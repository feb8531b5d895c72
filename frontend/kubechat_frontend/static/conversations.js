// kubechat's list of this browser's conversations (the sidebar): shown newest first from
// /chat/conversations, opened by plain links (/c/<id>), renamed in place, deleted after asking, and a new one
// started by the "New chat" form. Titles are set as text (never HTML); changes carry the CSRF token.
"use strict";

(function () {
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const list = document.getElementById("conversation-list");
  const empty = document.getElementById("conversation-empty");
  const shell = document.getElementById("shell");
  const toggle = document.getElementById("sidebar-toggle");
  const newChat = document.getElementById("new-chat");

  function shownHere() { return document.body.dataset.conversation || ""; }
  function titleOf(item) { return item.title || "New chat"; }

  async function call(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) {
      let detail = {};
      try { detail = (await response.json()).error || {}; } catch (e) { /* not JSON */ }
      throw new Error(detail.message || "The server answered " + response.status + ".");
    }
    return response.status === 204 ? null : response.json();
  }

  function iconButton(className, label, path, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "icon " + className;
    button.title = label;
    button.setAttribute("aria-label", label);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "path");
    line.setAttribute("d", path);
    svg.appendChild(line);
    button.appendChild(svg);
    button.addEventListener("click", onClick);
    return button;
  }

  function row(item) {
    const li = document.createElement("li");
    li.className = "conversation-item";
    li.dataset.id = item.id;
    const link = document.createElement("a");
    link.className = "conversation-title";
    link.href = "/c/" + encodeURIComponent(item.id);
    link.textContent = titleOf(item);
    link.title = titleOf(item);
    if (item.id === shownHere()) {
      li.classList.add("open");
      link.setAttribute("aria-current", "page");
    }
    li.append(
      link,
      iconButton("rename", "Rename \u201c" + titleOf(item) + "\u201d", "M4 20h4L19 9l-4-4L4 16v4z", () => startRename(li, item)),
      iconButton("delete", "Delete \u201c" + titleOf(item) + "\u201d", "M6 6l12 12M18 6L6 18", () => remove(li, item)),
    );
    return li;
  }

  function render(items) {
    list.replaceChildren(...items.map(row));
    empty.hidden = items.length > 0;
  }

  async function refresh() {
    try {
      render((await call("GET", "/chat/conversations")).conversations);
    } catch (error) {
      empty.hidden = false;
      empty.textContent = "The conversations could not be loaded: " + error.message;
    }
  }

  function focusRow(id, selector) {
    const li = list.querySelector('li[data-id="' + CSS.escape(id) + '"]');
    if (li) li.querySelector(selector).focus();
  }

  // Rename in place: Enter saves, Escape (or leaving the box) keeps the old title.
  function startRename(li, item) {
    const input = document.createElement("input");
    input.type = "text";
    input.className = "rename-input";
    input.value = item.title;
    input.maxLength = 120;
    input.setAttribute("aria-label", "New title for \u201c" + titleOf(item) + "\u201d");
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title && title !== item.title) {
        try {
          await call("PATCH", "/chat/conversations/" + encodeURIComponent(item.id), { title });
        } catch (error) {
          alert("Could not rename: " + error.message);
        }
      }
      await refresh();
      focusRow(item.id, "button.rename");
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); finish(true); }
      else if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); finish(false); }
    });
    input.addEventListener("blur", () => finish(false));
    li.querySelector(".conversation-title").replaceWith(input);
    input.focus();
    input.select();
  }

  async function remove(li, item) {
    if (!confirm("Delete \u201c" + titleOf(item) + "\u201d? Its messages are deleted for good.")) return;
    try {
      await call("DELETE", "/chat/conversations/" + encodeURIComponent(item.id));
    } catch (error) {
      alert("Could not delete: " + error.message);
      return;
    }
    if (item.id === shownHere()) {
      window.location.assign("/");  // the deleted conversation was on this page: start afresh
      return;
    }
    const next = li.nextElementSibling || li.previousElementSibling;
    await refresh();
    if (next) focusRow(next.dataset.id, ".conversation-title");
    else document.getElementById("prompt").focus();
  }

  // "New chat" (and a changed model or persona): a new conversation with the form's picks, opened.
  newChat.addEventListener("submit", async (event) => {
    event.preventDefault();
    const picks = Object.fromEntries(new FormData(newChat));
    delete picks.csrf_token;
    try {
      const created = await call("POST", "/chat/conversations", picks);
      window.location.assign("/c/" + encodeURIComponent(created.id));
    } catch (error) {
      alert("Could not start a new conversation: " + error.message);
    }
  });

  // On narrow screens the list is a panel that the top bar's button opens, and Escape or a tap beside it
  // closes (the panel covers the button).
  function setOpen(open) {
    shell.classList.toggle("sidebar-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    if (open) { const first = list.querySelector("a, button"); if (first) first.focus(); }
  }
  toggle.addEventListener("click", () => setOpen(!shell.classList.contains("sidebar-open")));
  document.getElementById("sidebar").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && shell.classList.contains("sidebar-open")) { setOpen(false); toggle.focus(); }
  });
  shell.querySelector(".app").addEventListener("click", (event) => {
    if (shell.classList.contains("sidebar-open") && !toggle.contains(event.target)) setOpen(false);
  });

  document.addEventListener("kubechat:conversation-saved", refresh);
  refresh();
})();
