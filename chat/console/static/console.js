// The web console: sign up or sign in with a token, list and create events, chat.
//
// Everything live goes through the reference client (chat-client.js); the REST API is used for
// what the WebSocket does not carry (users, events, participants, status, unread summary).
// Every text from the server is put in the page with textContent, never parsed as HTML.

import { ChatClient, RequestFailed, Timeline, newClientMsgId } from "./chat-client.js";

const REACTIONS = ["👍", "❤️", "😂", "🎉"];
const TOKEN_KEY = "timingle-chat-token";
const EVENTS_REFRESH_MS = 30_000;

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);

const state = {
  token: /** @type {string|null} */ (null),
  me: /** @type {any} */ (null),
  client: /** @type {ChatClient|null} */ (null),
  events: /** @type {any[]} */ ([]),
  unread: /** @type {Map<number, number>} */ (new Map()),
  selected: /** @type {number|null} */ (null),
  detail: /** @type {any} */ (null),
  timelines: /** @type {Map<number, Timeline>} */ (new Map()),
  pending: /** @type {Map<number, Map<string, {text: string, state: string}>>} */ (new Map()),
  typing: /** @type {Map<number, number[]>} */ (new Map()),
  presence: /** @type {Map<number, number[]>} */ (new Map()),
  myReactions: /** @type {Set<string>} */ (new Set()),
  names: /** @type {Map<number, string>} */ (new Map()),
  noOlder: /** @type {Set<number>} */ (new Set()),
  historyLoaded: /** @type {Set<number>} */ (new Set()),
  lastRead: /** @type {Map<number, string>} */ (new Map()),
  typingSentAt: 0,
  typingStop: 0,
  readTimer: 0,
  eventsTimer: 0,
};

// ------------------------------------------------------------------ REST

/** @param {string} method @param {string} path @param {any} [body] */
async function api(method, path, body) {
  const headers = /** @type {Record<string,string>} */ ({});
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && state.token) signOut("Your token was refused: sign in again.");
    const detail = data?.errors?.map((/** @type {any} */ e) => `${e.field}: ${e.message}`).join("; ");
    throw new Error(detail || data?.detail || `${method} ${path}: HTTP ${response.status}`);
  }
  return data;
}

/** @param {string} where @param {unknown} error */
function showError(where, error) {
  $(where).textContent = error instanceof Error ? error.message : String(error);
}

// ------------------------------------------------------------------ signing in

async function signIn(/** @type {string} */ token) {
  state.token = token;
  try {
    state.me = await api("GET", "/v1/users/me");
  } catch (error) {
    state.token = null;
    throw error;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.names.set(state.me.id, state.me.display_name || state.me.name);
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("sign-out").hidden = false;
  $("me").hidden = false;
  $("me").textContent = `${state.me.display_name || state.me.name} (user ${state.me.id})`;
  connect();
  await loadEvents();
  // Being added to an event pushes nothing over the WebSocket: look for new events now and then.
  clearInterval(state.eventsTimer);
  state.eventsTimer = setInterval(() => state.token && loadEvents(), EVENTS_REFRESH_MS);
}

/** @param {string} [why] */
function signOut(why = "") {
  clearInterval(state.eventsTimer);
  state.client?.close();
  state.client = null;
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  state.timelines.clear();
  state.historyLoaded.clear();
  state.noOlder.clear();
  state.pending.clear();
  state.selected = null;
  $("signed-out").hidden = false;
  $("signed-in").hidden = true;
  $("sign-out").hidden = true;
  $("me").hidden = true;
  $("event").hidden = true;
  setConnection("signed-out", "Signed out");
  $("sign-in-error").textContent = why;
}

$("signup-form").addEventListener("submit", async (/** @type {SubmitEvent} */ e) => {
  e.preventDefault();
  const form = new FormData(/** @type {HTMLFormElement} */ (e.target));
  try {
    const created = await api("POST", "/v1/users", { name: form.get("name"), phone: form.get("phone") });
    if (!created.access_token) throw new Error("this service issues tokens elsewhere: paste one");
    await signIn(created.access_token);
  } catch (error) {
    showError("sign-in-error", error);
  }
});

$("token-form").addEventListener("submit", async (/** @type {SubmitEvent} */ e) => {
  e.preventDefault();
  const token = String(new FormData(/** @type {HTMLFormElement} */ (e.target)).get("token")).trim();
  try {
    await signIn(token);
  } catch (error) {
    showError("sign-in-error", error);
  }
});

$("sign-out").addEventListener("click", () => signOut());

// ------------------------------------------------------------------ the live connection

/** @param {string} connectionState @param {string} text */
function setConnection(connectionState, text) {
  const element = $("connection");
  element.dataset.state = connectionState;
  element.textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const client = new ChatClient(`${scheme}//${location.host}/v1/ws`, { token: /** @type {string} */ (state.token) });
  state.client = client;
  setConnection("connecting", "Connecting…");
  client.addEventListener("connected", () => {
    setConnection("open", "Connected");
    renderLog();
  });
  client.addEventListener("disconnected", (/** @type {any} */ e) => {
    setConnection("disconnected", `Offline: reconnecting in ${e.detail.reconnectIn.toFixed(1)} s`);
    renderLog();
  });
  client.addEventListener("closed", () => signOut("The server refused your token: sign in again."));
  client.addEventListener("outbox", () => renderPendingStates());
  client.addEventListener("frame", (/** @type {any} */ e) => onFrame(e.detail));
  client.start();
}

/** @param {number} eventId */
function timelineOf(eventId) {
  let timeline = state.timelines.get(eventId);
  if (!timeline) {
    timeline = new Timeline(eventId);
    state.timelines.set(eventId, timeline);
  }
  return timeline;
}

/** @param {any} frame */
function onFrame(frame) {
  const eventId = frame.event_id;
  switch (frame.type) {
    case "message":
    case "message_updated":
    case "history":
      timelineOf(eventId).apply(frame);
      if (frame.message) {
        state.names.set(frame.message.sender_id, frame.message.sender_name || `user ${frame.message.sender_id}`);
        if (frame.message.sender_id === state.me?.id) state.pending.get(eventId)?.delete(frame.message.client_msg_id);
      }
      if (eventId === state.selected) {
        renderLog();
        scheduleRead();
      }
      break;
    case "reaction": {
      timelineOf(eventId).apply(frame);
      if (frame.user_id === state.me?.id) {
        const key = `${frame.message_id}|${frame.emoji}`;
        if (frame.action === "add") state.myReactions.add(key);
        else state.myReactions.delete(key);
      }
      if (eventId === state.selected) renderLog();
      break;
    }
    case "typing":
      state.typing.set(eventId, frame.user_ids);
      if (eventId === state.selected) renderTyping();
      break;
    case "presence":
      state.presence.set(eventId, frame.user_ids);
      if (eventId === state.selected) renderPresence();
      break;
    case "unread":
      state.unread.set(eventId, frame.count);
      renderEventList();
      break;
    case "unsubscribed":
      if (frame.reason === "removed") {
        state.events = state.events.filter((e) => e.id !== eventId);
        if (state.selected === eventId) closeEvent();
        renderEventList();
        showError("workspace-error", `You were removed from event ${eventId}.`);
      }
      break;
  }
}

// ------------------------------------------------------------------ events list

async function loadEvents() {
  try {
    const [page, unread] = await Promise.all([api("GET", "/v1/events?limit=50"), api("GET", "/v1/me/unread")]);
    state.events = page.items;
    for (const item of unread.items) state.unread.set(item.event_id, item.unread);
    renderEventList();
    for (const event of state.events) state.client?.subscribe(event.id).catch(() => {});
  } catch (error) {
    showError("workspace-error", error);
  }
}

/** @param {string} iso */
function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function renderEventList() {
  const list = $("event-list");
  list.replaceChildren();
  $("no-events").hidden = state.events.length > 0;
  for (const event of state.events) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.eventId = String(event.id);
    if (event.id === state.selected) button.setAttribute("aria-current", "true");
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = event.title;
    const meta = document.createElement("span");
    meta.className = "when";
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = event.status;
    meta.append(`${when(event.start_time)} · `, status);
    button.append(title, meta);
    const count = state.unread.get(event.id) ?? 0;
    let label = `${event.title}, ${event.status}, ${when(event.start_time)}`;
    if (count > 0) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = String(count);
      button.append(badge);
      label += `, ${count} unread`;
    }
    button.setAttribute("aria-label", label);
    button.addEventListener("click", () => openEvent(event.id));
    item.append(button);
    list.append(item);
  }
}

$("refresh-events").addEventListener("click", () => loadEvents());

$("event-form").addEventListener("submit", async (/** @type {SubmitEvent} */ e) => {
  e.preventDefault();
  const formElement = /** @type {HTMLFormElement} */ (e.target);
  const form = new FormData(formElement);
  const participants = String(form.get("participants") || "")
    .split(/[ ,]+/)
    .filter(Boolean)
    .map(Number);
  try {
    const created = await api("POST", "/v1/events", {
      title: form.get("title"),
      start_time: new Date(String(form.get("start"))).toISOString(),
      end_time: new Date(String(form.get("end"))).toISOString(),
      location: form.get("location") || null,
      participant_ids: participants,
    });
    formElement.reset();
    $("new-event").open = false;
    await loadEvents();
    await openEvent(created.id);
  } catch (error) {
    showError("workspace-error", error);
  }
});

// ------------------------------------------------------------------ one event

/** @param {number} eventId */
async function openEvent(eventId) {
  $("workspace-error").textContent = "";
  state.selected = eventId;
  $("signed-in").classList.add("chat-open");
  renderEventList();
  $("event").hidden = false;
  await loadDetail();
  const client = /** @type {ChatClient} */ (state.client);
  const timeline = timelineOf(eventId);
  renderLog(true);
  renderPresence();
  renderTyping();
  try {
    await client.subscribe(eventId);
    if (!state.historyLoaded.has(eventId)) {
      // The latest page; live messages already held overlap it and are kept once.
      const page = await client.history(eventId, { limit: 30 });
      timeline.apply(page);
      state.historyLoaded.add(eventId);
      if (page.next_cursor === null) state.noOlder.add(eventId);
    }
  } catch (error) {
    showError("workspace-error", error);
  }
  renderLog(true);
  scheduleRead();
  $("composer-text").focus();
}

function closeEvent() {
  state.selected = null;
  $("event").hidden = true;
  $("signed-in").classList.remove("chat-open");
  renderEventList();
}

$("back").addEventListener("click", () => {
  closeEvent();
  document.querySelector("#event-list button")?.focus();
});

async function loadDetail() {
  const eventId = state.selected;
  try {
    const detail = await api("GET", `/v1/events/${eventId}`);
    if (eventId !== state.selected) return;
    state.detail = detail;
    for (const p of detail.participants) state.names.set(p.user_id, p.display_name || p.name);
    renderDetail();
  } catch (error) {
    showError("workspace-error", error);
  }
}

function renderDetail() {
  const detail = state.detail;
  $("event-title-heading").textContent = detail.title;
  const place = detail.location ? ` · ${detail.location}` : "";
  $("event-meta").textContent = `${detail.status} · ${when(detail.start_time)} – ${when(detail.end_time)}${place}`;
  const list = $("participants");
  list.replaceChildren();
  for (const p of detail.participants) {
    const item = document.createElement("li");
    const role = p.user_id === detail.creator_id ? ", creator" : "";
    item.textContent = `${p.display_name || p.name} (user ${p.user_id}${role}): ${p.confirmed ? "confirmed" : "not confirmed"}`;
    list.append(item);
  }
  const mine = detail.participants.find((/** @type {any} */ p) => p.user_id === state.me.id);
  $("confirm").hidden = !mine || mine.confirmed || !["PROPOSED", "CONFIRMED"].includes(detail.status);
  const select = $("status-select");
  select.replaceChildren(
    ...detail.allowed_transitions.map((/** @type {string} */ s) => new Option(s, s)),
  );
  $("status-form").hidden = detail.allowed_transitions.length === 0;
  $("participant-form").hidden = !(detail.creator_id === state.me.id && detail.status === "PROPOSED");
}

/** @param {() => Promise<unknown>} action */
async function eventAction(action) {
  $("workspace-error").textContent = "";
  try {
    await action();
    await loadDetail();
    await loadEvents();
  } catch (error) {
    showError("workspace-error", error);
  }
}

$("confirm").addEventListener("click", () => eventAction(() => api("POST", `/v1/events/${state.selected}/confirm`)));

$("status-form").addEventListener("submit", (/** @type {SubmitEvent} */ e) => {
  e.preventDefault();
  const status = $("status-select").value;
  eventAction(() => api("POST", `/v1/events/${state.selected}/status`, { status }));
});

$("participant-form").addEventListener("submit", (/** @type {SubmitEvent} */ e) => {
  e.preventDefault();
  const input = $("participant-id");
  const userId = Number(input.value);
  eventAction(async () => {
    await api("POST", `/v1/events/${state.selected}/participants`, { user_id: userId });
    input.value = "";
  });
});

// ------------------------------------------------------------------ the chat log

/** @param {number} userId */
function nameOf(userId) {
  return state.names.get(userId) ?? `user ${userId}`;
}

/** @param {boolean} [toBottom] */
function renderLog(toBottom = false) {
  const eventId = state.selected;
  if (eventId === null) return;
  const wrap = document.querySelector(".log-wrap");
  const atBottom = toBottom || wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 40;
  const log = $("chat-log");
  const timeline = timelineOf(eventId);
  const creator = state.detail?.id === eventId ? state.detail.creator_id : null;
  const connected = state.client?.state === "open";
  /** @type {[string, string, () => HTMLElement][]} key, what it shows, how to draw it */
  const wanted = timeline.messages.map((m) => [
    `m:${m.message_id}`,
    JSON.stringify([m.text, m.edited_at, m.is_deleted, timeline.reactions.get(m.message_id), REACTIONS.map((e) => state.myReactions.has(`${m.message_id}|${e}`)), creator]),
    () => messageItem(m, timeline, creator),
  ]);
  for (const [clientMsgId, local] of state.pending.get(eventId) ?? []) {
    wanted.push([`p:${clientMsgId}`, JSON.stringify([local.state, connected]), () => pendingItem(clientMsgId, local)]);
  }
  reconcile(log, wanted);
  const older = $("older");
  older.disabled = state.noOlder.has(eventId);
  older.textContent = older.disabled ? "No older messages" : "Load older messages";
  if (atBottom) wrap.scrollTop = wrap.scrollHeight;
}

/**
 * Make the list show `wanted` in order, touching only what changed: new messages are the only
 * nodes added to the live region (so a screen reader announces just them), and a message being
 * edited keeps its edit form while others arrive.
 * @param {HTMLElement} list @param {[string, string, () => HTMLElement][]} wanted
 */
function reconcile(list, wanted) {
  const existing = new Map([...list.children].map((el) => [/** @type {HTMLElement} */ (el).dataset.key, el]));
  const keys = new Set(wanted.map(([key]) => key));
  for (const [key, element] of existing) if (!keys.has(key)) element.remove();
  let next = list.firstElementChild;
  for (const [key, shows, draw] of wanted) {
    let element = /** @type {HTMLElement|undefined} */ (existing.get(key));
    if (!element || element.dataset.shows !== shows) {
      const drawn = draw();
      drawn.dataset.key = key;
      drawn.dataset.shows = shows;
      if (element) {
        if (next === element) next = drawn;
        element.replaceWith(drawn);
      }
      element = drawn;
    }
    if (element === next) next = next.nextElementSibling;
    else list.insertBefore(element, next);
  }
}

/** @param {any} message @param {Timeline} timeline @param {number|null} creator */
function messageItem(message, timeline, creator) {
  const item = document.createElement("li");
  const mine = message.sender_id === state.me.id;
  item.className = `message${mine ? " mine" : ""}${message.is_deleted ? " deleted" : ""}`;
  item.dataset.messageId = message.message_id;
  const meta = document.createElement("div");
  meta.className = "meta";
  const sender = document.createElement("span");
  sender.className = "sender";
  sender.textContent = mine ? "You" : message.sender_name || nameOf(message.sender_id);
  const time = document.createElement("time");
  time.dateTime = message.created_at;
  time.textContent = new Date(message.created_at).toLocaleTimeString(undefined, { timeStyle: "short" });
  meta.append(sender, time);
  if (message.edited_at && !message.is_deleted) meta.append("(edited)");
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = message.is_deleted ? "This message was deleted." : message.text;
  item.append(meta, text);
  if (message.is_deleted) return item;

  const counts = timeline.reactions.get(message.message_id) ?? {};
  const reactions = document.createElement("div");
  reactions.className = "reactions";
  for (const emoji of REACTIONS) {
    const button = document.createElement("button");
    button.type = "button";
    const key = `${message.message_id}|${emoji}`;
    const pressed = state.myReactions.has(key);
    const count = counts[emoji] ?? 0;
    button.setAttribute("aria-pressed", String(pressed));
    if (count) button.classList.add("counted");
    button.setAttribute("aria-label", `React ${emoji}${count ? ` (${count})` : ""}`);
    const glyph = document.createElement("span");
    glyph.className = "emoji";
    glyph.textContent = emoji;
    button.append(glyph);
    if (count) button.append(` ${count}`);
    button.addEventListener("click", () => {
      const client = /** @type {ChatClient} */ (state.client);
      const request = pressed
        ? client.unreact(message.event_id, message.message_id, emoji)
        : client.react(message.event_id, message.message_id, emoji);
      request.catch((error) => showError("workspace-error", error));
    });
    reactions.append(button);
  }
  const actions = document.createElement("div");
  actions.className = "message-actions";
  if (mine) actions.append(actionButton("Edit", () => startEdit(item, message)));
  if (mine || creator === state.me.id) {
    actions.append(
      actionButton("Delete", () => {
        if (!confirm("Delete this message for everyone?")) return;
        state.client?.delete(message.event_id, message.message_id).catch((error) => showError("workspace-error", error));
      }),
    );
  }
  const tools = document.createElement("div");
  tools.className = "tools";
  tools.append(reactions);
  if (actions.childElementCount) tools.append(actions);
  item.append(tools);
  return item;
}

/** @param {string} label @param {() => void} onClick */
function actionButton(label, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", onClick);
  return button;
}

/** @param {HTMLElement} item @param {any} message */
function startEdit(item, message) {
  const form = document.createElement("form");
  form.className = "edit-form";
  const label = document.createElement("label");
  label.className = "visually-hidden";
  const area = document.createElement("textarea");
  area.id = `edit-${message.message_id}`;
  label.htmlFor = area.id;
  label.textContent = "Edit message";
  area.value = message.text;
  area.required = true;
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save";
  const cancel = actionButton("Cancel", () => {
    item.dataset.shows = "";
    renderLog();
  });
  form.append(label, area, save, cancel);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    state.client
      ?.edit(message.event_id, message.message_id, area.value)
      .then(() => {
        item.dataset.shows = "";
        renderLog();
      })
      .catch((error) => showError("workspace-error", error));
  });
  item.querySelector(".text")?.replaceWith(form);
  area.focus();
}

/** @param {string} clientMsgId @param {{text: string, state: string}} local */
function pendingItem(clientMsgId, local) {
  const item = document.createElement("li");
  item.className = "message mine pending";
  item.dataset.clientMsgId = clientMsgId;
  const meta = document.createElement("div");
  meta.className = "meta";
  const sender = document.createElement("span");
  sender.className = "sender";
  sender.textContent = "You";
  const status = document.createElement("span");
  status.className = "state";
  status.textContent = local.state === "failed" ? "not sent" : state.client?.state === "open" ? "sending…" : "waiting for the connection…";
  meta.append(sender, status);
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = local.text;
  item.append(meta, text);
  if (local.state === "failed") {
    item.append(
      actionButton("Dismiss", () => {
        state.pending.get(/** @type {number} */ (state.selected))?.delete(clientMsgId);
        renderLog();
      }),
    );
  }
  return item;
}

function renderPendingStates() {
  if (state.selected !== null && state.pending.get(state.selected)?.size) renderLog();
}

function renderPresence() {
  const others = (state.presence.get(/** @type {number} */ (state.selected)) ?? []).filter((id) => id !== state.me.id);
  $("presence").textContent = others.length ? `Here now: ${others.map(nameOf).join(", ")}` : "Nobody else is here now.";
}

function renderTyping() {
  const typing = (state.typing.get(/** @type {number} */ (state.selected)) ?? []).filter((id) => id !== state.me.id);
  $("typing").textContent = typing.length ? `${typing.map(nameOf).join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
}

$("older").addEventListener("click", async () => {
  const eventId = /** @type {number} */ (state.selected);
  const timeline = timelineOf(eventId);
  const wrap = document.querySelector(".log-wrap");
  const fromBottom = wrap.scrollHeight - wrap.scrollTop;
  try {
    const before = timeline.oldestCursor();
    const page = await state.client?.history(eventId, before ? { before, limit: 30 } : { limit: 30 });
    timeline.apply(page);
    if (!page || page.next_cursor === null) state.noOlder.add(eventId);
  } catch (error) {
    showError("workspace-error", error);
  }
  renderLog();
  wrap.scrollTop = wrap.scrollHeight - fromBottom;
});

// ------------------------------------------------------------------ composing

$("composer").addEventListener("submit", (/** @type {SubmitEvent} */ e) => {
  e.preventDefault();
  const area = $("composer-text");
  const text = area.value;
  if (!text.trim() || state.selected === null || !state.client) return;
  area.value = "";
  const eventId = state.selected;
  const clientMsgId = newClientMsgId();
  if (!state.pending.has(eventId)) state.pending.set(eventId, new Map());
  const local = { text, state: "sending" };
  state.pending.get(eventId)?.set(clientMsgId, local);
  renderLog(true);
  stopTyping();
  state.client
    .send(eventId, text, { clientMsgId })
    .then((/** @type {any} */ ack) => {
      // The message frame usually arrives too; the ack alone is enough to show it sent.
      timelineOf(eventId).add([
        {
          event_id: eventId,
          message_id: ack.message_id,
          cursor: ack.cursor,
          created_at: ack.created_at,
          sender_id: state.me.id,
          sender_name: state.me.display_name || state.me.name,
          sender_profile_url: null,
          client_msg_id: clientMsgId,
          message_type: "text",
          text,
          attachments: [],
          metadata: {},
          reply_to: null,
          edited_at: null,
          is_deleted: false,
        },
      ].filter((m) => !timelineOf(eventId).messages.some((held) => held.message_id === m.message_id)));
      state.pending.get(eventId)?.delete(clientMsgId);
      if (eventId === state.selected) renderLog();
    })
    .catch((error) => {
      local.state = "failed";
      showError("workspace-error", error instanceof RequestFailed ? `Not sent: ${error.message}` : error);
      renderLog();
    });
});

$("composer-text").addEventListener("keydown", (/** @type {KeyboardEvent} */ e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

$("composer-text").addEventListener("input", () => {
  if (state.selected === null || !state.client) return;
  const now = Date.now();
  if (now - state.typingSentAt > 3000) {
    state.typingSentAt = now;
    state.client.typing(state.selected, "start").catch(() => {});
  }
  clearTimeout(state.typingStop);
  state.typingStop = setTimeout(stopTyping, 4000);
});

$("composer-text").addEventListener("blur", () => stopTyping());

function stopTyping() {
  clearTimeout(state.typingStop);
  if (state.typingSentAt && state.selected !== null) {
    state.typingSentAt = 0;
    state.client?.typing(state.selected, "stop").catch(() => {});
  }
}

// ------------------------------------------------------------------ read marks

function scheduleRead() {
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(markRead, 300);
}

function markRead() {
  const eventId = state.selected;
  if (eventId === null || document.visibilityState !== "visible" || !state.client) return;
  const messages = timelineOf(eventId).messages;
  const newest = messages[messages.length - 1];
  if (!newest || state.lastRead.get(eventId) === newest.message_id) return;
  state.lastRead.set(eventId, newest.message_id);
  state.client
    .read(eventId, newest.message_id)
    .then((/** @type {any} */ answer) => {
      state.unread.set(eventId, answer.count);
      renderEventList();
    })
    .catch(() => state.lastRead.delete(eventId));
}

document.addEventListener("visibilitychange", scheduleRead);

// ------------------------------------------------------------------ start

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved).catch((error) => showError("sign-in-error", error));
