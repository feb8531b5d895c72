// kubechat's chat page: streams answers from /chat/send, renders markdown safely (marked, then DOMPurify, raw
// HTML shown as text), and keeps the page usable with a keyboard and on a phone.
"use strict";

(function () {
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const messages = document.getElementById("messages");
  const scroller = document.getElementById("conversation");
  const composer = document.getElementById("composer");
  const prompt = document.getElementById("prompt");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const newChat = document.getElementById("new-chat");
  let controller = null;

  // --- Markdown: marked parses, DOMPurify sanitises, highlight.js colours code (all vendored in /static). ---
  // Raw HTML in an answer is shown as text, not parsed: a model quoting <script> means the characters. With
  // no html (block) or tag (inline) token, marked treats it as plain text, which it escapes; the markdown
  // around it still renders. DOMPurify then vets what marked made.
  const markdown = new marked.Marked({ gfm: true, breaks: true });
  markdown.use({ tokenizer: { html() { return undefined; }, tag() { return undefined; } } });
  // No images (a model could make the browser fetch a URL carrying the conversation); links open apart.
  const purifyOptions = { USE_PROFILES: { html: true }, FORBID_TAGS: ["img", "style", "form", "input", "button"] };
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") { node.setAttribute("rel", "noopener noreferrer nofollow"); node.setAttribute("target", "_blank"); }
  });
  hljs.configure({ ignoreUnescapedHTML: true });

  function addCopyButton(pre) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy this code");
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(pre.querySelector("code").textContent.replace(/\n$/, ""));
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    pre.appendChild(button);
  }

  function renderMarkdown(target, text) {
    // Sanitised HTML is the one innerHTML on the page; everything else is built from DOM nodes.
    target.innerHTML = DOMPurify.sanitize(markdown.parse(text), purifyOptions);
    for (const code of target.querySelectorAll("pre > code")) {
      hljs.highlightElement(code);
      addCopyButton(code.parentElement);
    }
  }

  // --- Messages ---
  // Follow a streaming answer only while the reader is at the end: someone scrolled up to read back is
  // left where they are. Their own new message always brings the end into view.
  function atEnd() { return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80; }
  function scrollToEnd(force) { if (force || atEnd()) scroller.scrollTop = scroller.scrollHeight; }

  // Screen readers hear each finished answer (or error) once, not every streamed piece of the page.
  const announcer = document.getElementById("announcer");
  function announce(text) { announcer.textContent = text; }

  function addMessage(role, text) {
    const message = document.createElement("div");
    message.className = "message " + role;
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    renderMarkdown(bubble, text);
    message.appendChild(bubble);
    const follow = atEnd();
    messages.appendChild(message);
    scrollToEnd(follow || role === "user");
    return message;
  }

  function addBadge(message, pod, node) {
    const badge = document.createElement("div");
    badge.className = "badge";
    badge.title = "The pod and node that produced this answer";
    const dot = document.createElement("span");
    dot.className = "dot";
    badge.append(dot, (pod || "?") + " · " + (node || "?"));
    message.appendChild(badge);
  }

  function showError(message, text, error, regenerate = false) {
    message.classList.add("error");
    const bubble = message.querySelector(".bubble");
    bubble.replaceChildren();
    const p = document.createElement("p");
    p.textContent = error.message || "Something went wrong.";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "button retry";
    if (error.code === "model_removed") {
      // Retrying cannot help: this conversation's model is gone. Start a new chat with an offered one.
      retry.textContent = "New chat";
      // This page may list models from before the change: leave the choice to the server (its default).
      retry.addEventListener("click", () => {
        newChat.querySelector('select[name="model"]').disabled = true;
        newChat.requestSubmit();
      });
    } else {
      retry.textContent = "Retry";
      retry.addEventListener("click", () => { message.remove(); send(text, false, regenerate); });
    }
    bubble.append(p, retry);
    announce(p.textContent);
    if (error.retryAfter) {
      const note = document.createElement("p");
      note.className = "note";
      note.textContent = "The server suggests waiting " + error.retryAfter + " s.";
      bubble.appendChild(note);
    }
  }

  // A note under an answer that stays (e.g. it could not be saved): the answer is kept, the user is told.
  function addNote(message, text) {
    const note = document.createElement("p");
    note.className = "note unsaved";
    note.setAttribute("role", "status");
    note.textContent = text;
    message.appendChild(note);
  }

  // The server now holds this conversation: it can be deleted, and the list (conversations.js) shows it.
  function conversationSaved() {
    document.getElementById("end-chat-link").hidden = false;
    document.dispatchEvent(new CustomEvent("kubechat:conversation-saved"));
  }

  function setBusy(busy) {
    sendButton.hidden = busy;
    stopButton.hidden = !busy;
    document.body.classList.toggle("busy", busy);
  }

  // --- A model waking up (scaled to zero, or its pods starting): what it does shows in the answer's place
  // until the answer streams into the same bubble. Screen readers hear each new phase once, not each percent.
  const wakingPhases = {
    asleep: "The model is asleep; waking it up", scheduling: "Finding a place to run the model",
    starting: "Starting the model", downloading: "Downloading the model", loading: "Loading the model",
    warming: "Warming up the model", ready: "The model is ready; connecting",
    failed: "The model failed to start; retrying",
  };
  function showWaking(answer, event) {
    let status = answer.querySelector(".waking");
    if (!status) {
      status = document.createElement("p");
      status.className = "waking";
      answer.querySelector(".bubble").prepend(status);
    }
    const phase = wakingPhases[event.phase] || "Waking the model";
    if (status.dataset.phase !== event.phase) announce(phase + "…");
    status.dataset.phase = event.phase;
    const percent = typeof event.percent === "number" ? " " + Math.round(event.percent) + "%" : "";
    status.textContent = phase + percent + "…" + (event.message ? " (" + event.message + ")" : "");
  }

  // --- Streaming ---
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of block.split("\n")) {
          if (line.startsWith("data:")) onEvent(JSON.parse(line.slice(5)));
        }
      }
    }
  }

  // The last answer can be asked for again: the server answers the same question anew and replaces the old
  // answer only once the new one is saved.
  function placeRegenerate() {
    for (const old of messages.querySelectorAll("button.regenerate")) old.remove();
    const last = messages.lastElementChild;
    if (!last || !last.matches(".message.assistant:not(.greeting):not(.error):not(.pending)")) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link regenerate";
    button.textContent = "Regenerate";
    button.title = "Answer the last question again";
    button.addEventListener("click", () => {
      if (controller) return;
      last.remove();
      send(null, false, true);
    });
    last.appendChild(button);
  }

  async function send(text, showQuestion = true, regenerate = false) {
    if (controller) return;
    for (const old of messages.querySelectorAll("button.regenerate")) old.remove();
    if (showQuestion !== false) addMessage("user", text);
    const answer = addMessage("assistant pending", "");
    const bubble = answer.querySelector(".bubble");
    bubble.appendChild(Object.assign(document.createElement("span"), { className: "typing" }));
    let answerText = "";
    let frame = 0;
    controller = new AbortController();
    setBusy(true);
    try {
      const response = await fetch("/chat/send", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify(Object.assign(regenerate ? { regenerate: true } : { message: text },
                                           { conversation_id: document.body.dataset.conversation || undefined })),
        signal: controller.signal,
      });
      if (!response.ok) {
        let detail = {};
        try { detail = (await response.json()).error || {}; } catch (e) { /* not JSON */ }
        throw { message: detail.message || "The server answered " + response.status + ".",
                code: detail.code, retryAfter: response.headers.get("Retry-After") };
      }
      await readEvents(response, (event) => {
        if (event.type === "meta") {
          document.body.dataset.conversation = event.session_id;  // this tab's conversation from now on
          addBadge(answer, event.pod, event.node);
        } else if (event.type === "delta") {
          answerText += event.text;
          answer.classList.remove("pending");
          if (!frame) frame = requestAnimationFrame(() => { frame = 0; renderMarkdown(bubble, answerText); scrollToEnd(); });
        } else if (event.type === "notice") {
          addNote(answer, event.message);
        } else if (event.type === "waking") {
          showWaking(answer, event);
        } else if (event.type === "error") {
          throw { message: event.message, code: event.code, retryAfter: event.retry_after };
        }
      });
      cancelAnimationFrame(frame);
      renderMarkdown(bubble, answerText);
      answer.classList.remove("pending");
      answer.classList.add("done");
      // what the reader sees, not the markdown source: "*Sunning*" is heard as "Sunning"
      announce(bubble.innerText);
      conversationSaved();
    } catch (error) {
      cancelAnimationFrame(frame);
      if (error && error.name === "AbortError") {
        renderMarkdown(bubble, answerText);
        answer.classList.remove("pending");
        answer.classList.add("stopped");
        if (answerText) conversationSaved();
      } else {
        showError(answer, text, error instanceof TypeError ? { message: "Could not reach the server." } : error, regenerate);
      }
    } finally {
      controller = null;
      setBusy(false);
      placeRegenerate();
      scrollToEnd();
      prompt.focus();
    }
  }

  // --- Composer: Enter sends, Shift+Enter makes a new line; the box grows with its text. ---
  function autosize() {
    prompt.style.height = "auto";
    prompt.style.height = Math.min(prompt.scrollHeight, 200) + "px";
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value;
    if (!text.trim() || controller) return;
    prompt.value = "";
    autosize();
    send(text);
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  prompt.addEventListener("input", autosize);
  stopButton.addEventListener("click", () => { if (controller) controller.abort(); });

  // Picking another model or persona starts a new conversation with that choice; the open one stays in the
  // list (conversations.js handles the form's submit).
  for (const picker of newChat.querySelectorAll("select")) {
    picker.addEventListener("change", () => newChat.requestSubmit());
  }

  document.getElementById("end-chat").addEventListener("submit", (event) => {
    if (!confirm("Delete this conversation?")) event.preventDefault();
  });

  // Server-rendered history arrives as escaped text; give it the same formatting as live answers.
  for (const bubble of document.querySelectorAll("[data-markdown]")) renderMarkdown(bubble, bubble.textContent.trim());
  placeRegenerate();
  scrollToEnd(true);
  prompt.focus();
})();
