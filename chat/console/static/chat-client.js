// The reference JavaScript client of the timingle chat protocol (an ES module, no build step).
//
// It follows the algorithm of docs/clients.md, as the Python client (chat.client) does:
// connect and authenticate with `hello` (browsers cannot set headers on a WebSocket), reconnect
// with jittered exponential back-off, resubscribe every subscription with `since` = the cursor
// of the last `message` received, write every unanswered request again (a `send` keeps its
// `client_msg_id`, so the server stores it once and answers the retry with the original ack),
// pace writes by the token bucket in `welcome.limits`, retry after `retry_after_ms` on
// `rate_limited` and after a back-off on `unavailable`, drop repeated `message` frames, and
// order messages by their time-based id with `Timeline`.
//
// Events are dispatched on the client (an EventTarget): `frame` for every server frame pushed
// (detail: the frame), one event per frame type as well (`message`, `presence`, `typing`, ...),
// `connected` (detail: the welcome), `disconnected` (detail: {code, reason, reconnectIn}),
// `unknown` (a frame this client does not know), and `outbox` when the outbox changes.

/**
 * @typedef {{type: string, id?: string|number, [field: string]: any}} ClientFrame
 * @typedef {{type: string, ref?: string|number, [field: string]: any}} ServerFrame
 * @typedef {{
 *   event_id: number, message_id: string, cursor: string, created_at: string,
 *   sender_id: number, sender_name: string|null, sender_profile_url: string|null,
 *   client_msg_id: string, message_type: string, text: string, attachments: string[],
 *   metadata: Record<string, string>, reply_to: string|null, edited_at: string|null,
 *   is_deleted: boolean
 * }} ChatMessage
 * @typedef {{
 *   max_frame_bytes: number, send_rate_per_second: number, send_burst: number,
 *   heartbeat_ms: number, idle_timeout_ms: number, [limit: string]: number
 * }} Limits
 * @typedef {{type: "welcome", user_id: number, session_id: string, heartbeat_ms: number,
 *   limits: Limits}} Welcome
 * @typedef {{type: "subscribed", ref?: string|number, event_id: number, cursor: string|null}} Subscribed
 * @typedef {{type: "unsubscribed", ref?: string|number, event_id: number,
 *   reason: "requested"|"removed"|"resync"}} Unsubscribed
 * @typedef {{type: "ack", ref?: string|number, event_id: number, client_msg_id: string,
 *   message_id: string, cursor: string, created_at: string, duplicate: boolean}} Ack
 * @typedef {{type: "ok", ref?: string|number, op: "edit"|"delete"|"react"|"unreact"|"typing"}} Ok
 * @typedef {{type: "message", event_id: number, message: ChatMessage}} MessagePosted
 * @typedef {{type: "message_updated", event_id: number, message: ChatMessage}} MessageUpdated
 * @typedef {{type: "reaction", event_id: number, message_id: string, user_id: number,
 *   emoji: string, action: "add"|"remove", counts: Record<string, number>}} ReactionChanged
 * @typedef {{type: "typing", event_id: number, user_ids: number[]}} TypingChanged
 * @typedef {{type: "unread", ref?: string|number, event_id: number, count: number}} UnreadCount
 * @typedef {{type: "presence", event_id: number, user_ids: number[], joined: number[],
 *   left: number[]}} PresenceChanged
 * @typedef {{type: "history", ref?: string|number, event_id: number, messages: ChatMessage[],
 *   next_cursor: string|null}} HistoryPage
 * @typedef {{type: "error", ref?: string|number, code: string, message: string, field?: string,
 *   retry_after_ms?: number, errors?: {field: string, message: string}[]}} ErrorFrame
 * @typedef {{type: "pong", ref?: string|number}} ServerPong
 * @typedef {{type: "ping"}} ServerPing
 * @typedef {Welcome|Subscribed|Unsubscribed|Ack|Ok|MessagePosted|MessageUpdated|ReactionChanged|
 *   TypingChanged|UnreadCount|PresenceChanged|HistoryPage|ErrorFrame|ServerPong|ServerPing} KnownFrame
 *   Every frame of /v1/asyncapi.json's server messages.
 * @typedef {{base: number, cap: number}} Backoff
 * @typedef {{
 *   handle: number, frame: ClientFrame, attempts: number, readyAt: number,
 *   sentAs: string|null, resolve: (answer: ServerFrame) => void,
 *   reject: (error: Error) => void
 * }} PendingRequest
 */

/** The server frame types this client knows; others are dispatched as `unknown` events. */
export const SERVER_FRAME_TYPES = new Set([
  "welcome", "refreshed", "subscribed", "unsubscribed", "ack", "ok", "message", "message_updated", "reaction",
  "typing", "unread", "presence", "history", "error", "pong", "ping",
]);
/** Frames that draw on the server's per-connection write rate. */
export const WRITES = new Set(["send", "edit", "delete", "react", "unreact"]);
/** Requests that fail on a dropped connection instead of being written again. */
export const NOT_RETRIED = new Set(["typing", "ping", "refresh"]);
const RETRYABLE = new Set(["unavailable", "internal_error"]);
const RECENT_IDS_PER_EVENT = 4096;

/** The server refused a request with an `error` frame that retrying cannot fix. */
export class RequestFailed extends Error {
  /** @param {ServerFrame} frame */
  constructor(frame) {
    super(`${frame.code}: ${frame.message}`);
    this.name = "RequestFailed";
    /** The error frame's `code`: branch on it. */
    this.code = frame.code;
    this.frame = frame;
  }
}

/** A `typing` or `ping` whose connection dropped before its answer. */
export class ConnectionLost extends Error {}

/** The client was closed, or stopped because no token was accepted. */
export class ClientClosed extends Error {}

/**
 * "Full jitter": the n-th wait is uniform in [0, min(cap, base * 2^n)] seconds.
 * @param {Backoff} backoff @param {number} attempt @returns {number} milliseconds
 */
export function backoffDelay(backoff, attempt) {
  const windowS = Math.min(backoff.cap, backoff.base * 2 ** Math.min(attempt, 30));
  return windowS * Math.random() * 1000;
}

/**
 * The store's order of a message: its time-based id's 60-bit timestamp, then its last 8 bytes
 * compared as signed bytes (as CQL compares timeuuids). Returned as a string that compares in
 * that order: "hhh" + "mmmm" + "llllllll", then the last 8 bytes with each sign bit flipped.
 * @param {string} messageId @returns {string}
 */
export function orderKey(messageId) {
  const [low, mid, high, seq, node] = messageId.toLowerCase().split("-");
  const tieBreak = (seq + node).replace(/../g, (byte) => (parseInt(byte, 16) ^ 0x80).toString(16).padStart(2, "0"));
  return high.slice(1) + mid + low + tieBreak;
}

/** One event's messages in store order, each once (see chat/client/timeline.py). */
export class Timeline {
  /** @param {number} eventId */
  constructor(eventId) {
    this.eventId = eventId;
    /** @type {ChatMessage[]} oldest first */
    this.messages = [];
    /** @type {string[]} */
    this._keys = [];
    /** @type {Map<string, Record<string, number>>} message id -> emoji -> count */
    this.reactions = new Map();
  }

  /** Insert each message at its place, or replace the one with the same id. @param {ChatMessage[]} messages */
  add(messages) {
    for (const message of messages) {
      if (message.event_id !== this.eventId) continue;
      const key = orderKey(message.message_id);
      let lo = 0;
      let hi = this._keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this._keys[mid] < key) lo = mid + 1;
        else hi = mid;
      }
      if (this._keys[lo] === key) {
        this.messages[lo] = message;
      } else {
        this._keys.splice(lo, 0, key);
        this.messages.splice(lo, 0, message);
      }
    }
  }

  /** Take in a `message`, `message_updated`, `history` or `reaction` frame. @param {ServerFrame} frame */
  apply(frame) {
    if (frame.event_id !== this.eventId) return;
    if (frame.type === "message" || frame.type === "message_updated") this.add([frame.message]);
    else if (frame.type === "history") this.add(frame.messages);
    else if (frame.type === "reaction") this.reactions.set(frame.message_id, { ...frame.counts });
  }

  /** Where a `history` request with `before` continues. @returns {string|null} */
  oldestCursor() {
    return this.messages.length ? this.messages[0].cursor : null;
  }
}

/** The server's write rate, mirrored so that writes are paced instead of refused. */
class TokenBucket {
  /** @param {number} rate per second @param {number} burst @param {number} now ms */
  constructor(rate, burst, now) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.updated = now;
  }

  /** 0 when a token was taken, else the milliseconds until one is available. @param {number} now */
  take(now) {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updated) / 1000) * this.rate);
    this.updated = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) / this.rate) * 1000));
  }
}

export class ChatClient extends EventTarget {
  /**
   * @param {string} url the WebSocket URL, e.g. `ws://host/v1/ws`
   * @param {{
   *   token: string,
   *   tokenProvider?: () => Promise<string>,
   *   backoff?: Backoff,
   *   WebSocketImpl?: typeof WebSocket,
   * }} options `tokenProvider` is asked for a new token when the server refuses one
   */
  constructor(url, { token, tokenProvider, backoff = { base: 0.25, cap: 30 }, WebSocketImpl = WebSocket }) {
    super();
    this.url = url;
    this.token = token;
    this.tokenProvider = tokenProvider;
    this.backoff = backoff;
    this.WebSocketImpl = WebSocketImpl;
    /** @type {"connecting"|"authenticating"|"open"|"disconnected"|"closed"} */
    this.state = "disconnected";
    /** @type {Welcome|null} */
    this.welcome = null;
    this.reconnects = 0;
    this._failedConnects = 0;
    this._nextHandle = 1;
    this._nextFrameId = 1;
    /** @type {Map<number, PendingRequest>} the outbox, in request order */
    this._outbox = new Map();
    /** @type {Map<string, PendingRequest>} */
    this._inFlight = new Map();
    /** @type {Map<number, {cursor: string|null, live: boolean, recent: Set<string>}>} */
    this._subscriptions = new Map();
    /** @type {WebSocket|null} */
    this._ws = null;
    /** @type {TokenBucket|null} */
    this._bucket = null;
    this._authRefused = false;
    this._timer = 0;
    this._reconnectTimer = 0;
    this._idleTimer = 0;
  }

  /** Start connecting (and reconnecting for as long as the client lives). */
  start() {
    if (this.state === "disconnected") this._connect();
    return this;
  }

  /** Close for good; waiting requests fail with ClientClosed. */
  close() {
    this.state = "closed";
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._timer);
    clearTimeout(this._idleTimer);
    for (const request of this._outbox.values()) request.reject(new ClientClosed("the client was closed"));
    this._outbox.clear();
    this._inFlight.clear();
    if (this._ws) this._ws.close(1000, "closed by the application");
  }

  /** The resume cursor of a subscription. @param {number} eventId @returns {string|null} */
  cursor(eventId) {
    return this._subscriptions.get(eventId)?.cursor ?? null;
  }

  /** The frames of the requests not answered yet, oldest first. @returns {ClientFrame[]} */
  pending() {
    return [...this._outbox.values()].map((r) => ({ ...r.frame }));
  }

  /**
   * Use a new token: on the live session with a `refresh` frame, or - when the server answers
   * `unknown_type` (no in-session refresh) - by reconnecting with it. Without a connection,
   * the next one uses it.
   * @param {string} token
   */
  async refreshToken(token) {
    this.token = token;
    this._authRefused = false;
    if (this.state !== "open") return;
    try {
      await this.request({ type: "refresh", token });
    } catch (error) {
      if (error instanceof ConnectionLost) return;
      if (!(error instanceof RequestFailed) || error.code !== "unknown_type") throw error;
      this._ws?.close(1000, "token refresh");
    }
  }

  // ---------------------------------------------------------------- requests

  /** Any client frame without `id`; resolves with its answer. @param {ClientFrame} frame @returns {Promise<ServerFrame>} */
  request(frame) {
    if (this.state === "closed") return Promise.reject(new ClientClosed("the client is closed"));
    return new Promise((resolve, reject) => {
      const handle = this._nextHandle++;
      this._outbox.set(handle, { handle, frame: { ...frame }, attempts: 0, readyAt: 0, sentAs: null, resolve, reject });
      this._outboxChanged();
      this._pump();
    });
  }

  /** Subscribe and stay subscribed across reconnects. @param {number} eventId @param {string|null} [since] */
  subscribe(eventId, since = null) {
    const current = this._subscriptions.get(eventId);
    if (current) return Promise.resolve({ type: "subscribed", event_id: eventId, cursor: current.cursor });
    this._subscriptions.set(eventId, { cursor: since, live: false, recent: new Set() });
    return this.request({ type: "subscribe", event_id: eventId });
  }

  /**
   * End a subscription; without a connection the server holds none, so it ends here.
   * @param {number} eventId
   */
  unsubscribe(eventId) {
    this._subscriptions.delete(eventId);
    if (this.state !== "open") return Promise.resolve({ type: "unsubscribed", event_id: eventId, reason: "requested" });
    return this.request({ type: "unsubscribe", event_id: eventId });
  }

  /**
   * Post a message; resolves with its `ack` once it is durable, however many connections
   * that takes. The `client_msg_id` (generated unless given) is kept across retries.
   * @param {number} eventId @param {string} text
   * @param {{clientMsgId?: string, messageType?: string, attachments?: string[], replyTo?: string, metadata?: Record<string,string>}} [options]
   */
  send(eventId, text, options = {}) {
    const frame = {
      type: "send",
      event_id: eventId,
      client_msg_id: options.clientMsgId ?? newClientMsgId(),
      text,
    };
    if (options.messageType) frame.message_type = options.messageType;
    if (options.attachments) frame.attachments = options.attachments;
    if (options.replyTo) frame.reply_to = options.replyTo;
    if (options.metadata) frame.metadata = options.metadata;
    return this.request(frame);
  }

  /** @param {number} eventId @param {string} messageId @param {string} text */
  edit(eventId, messageId, text) {
    return this.request({ type: "edit", event_id: eventId, message_id: messageId, text });
  }

  /** @param {number} eventId @param {string} messageId */
  delete(eventId, messageId) {
    return this.request({ type: "delete", event_id: eventId, message_id: messageId });
  }

  /** @param {number} eventId @param {string} messageId @param {string} emoji */
  react(eventId, messageId, emoji) {
    return this.request({ type: "react", event_id: eventId, message_id: messageId, emoji });
  }

  /** @param {number} eventId @param {string} messageId @param {string} emoji */
  unreact(eventId, messageId, emoji) {
    return this.request({ type: "unreact", event_id: eventId, message_id: messageId, emoji });
  }

  /** @param {number} eventId @param {"start"|"stop"} state */
  typing(eventId, state) {
    return this.request({ type: "typing", event_id: eventId, state });
  }

  /** Mark read up to and including `messageId`; resolves with the `unread` answer. @param {number} eventId @param {string} messageId */
  read(eventId, messageId) {
    return this.request({ type: "read", event_id: eventId, message_id: messageId });
  }

  /** @param {number} eventId @param {{before?: string, after?: string, limit?: number}} [page] */
  history(eventId, page = {}) {
    return this.request({ type: "history", event_id: eventId, ...page });
  }

  // ---------------------------------------------------------------- connection

  _connect() {
    if (this.state === "closed") return;
    this.state = "connecting";
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (error) {
      this._lost(null, String(error));
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      this.state = "authenticating";
      this._write({ type: "hello", token: this.token, id: "hello" });
      this._armIdleTimer(30000);
    };
    ws.onmessage = (message) => this._receive(message.data);
    ws.onclose = (close) => {
      if (this._ws === ws) this._lost(close.code, close.reason);
    };
  }

  /**
   * No frame for this long means a dead connection (browsers hide WebSocket pings): give the
   * socket up at once rather than wait for a close handshake that cannot complete.
   * @param {number} ms
   */
  _armIdleTimer(ms) {
    clearTimeout(this._idleTimer);
    this._idleTimer = setTimeout(() => {
      const ws = this._ws;
      if (!ws) return;
      this._ws = null;
      ws.onmessage = null;
      ws.close();
      this._lost(null, "no frame from the server in time");
    }, ms);
  }

  /** @param {number|null} code @param {string} reason */
  _lost(code, reason) {
    const wasOpen = this.state === "open";
    clearTimeout(this._idleTimer);
    clearTimeout(this._timer);
    this._ws = null;
    this._bucket = null;
    for (const request of this._inFlight.values()) {
      request.sentAs = null;
      if (NOT_RETRIED.has(request.frame.type)) {
        this._settle(request, null, new ConnectionLost(`the connection dropped (${code})`));
      } else if (request.frame.type === "unsubscribe") {
        this._settle(request, { type: "unsubscribed", event_id: request.frame.event_id, reason: "requested" });
      }
    }
    this._inFlight.clear();
    for (const sub of this._subscriptions.values()) sub.live = false;
    if (this.state === "closed") return;
    this.state = "disconnected";
    if (wasOpen) {
      this.reconnects += 1;
      this._failedConnects = 0;
    } else {
      this._failedConnects += 1;
    }
    const delay = backoffDelay(this.backoff, this._failedConnects);
    this._emit("disconnected", { code, reason, reconnectIn: delay / 1000 });
    const needsToken = this._authRefused || code === 4401;
    this._reconnectTimer = setTimeout(async () => {
      if (needsToken) {
        if (!this.tokenProvider) {
          this._stop(new ClientClosed("the server refused the token and no token provider is set"));
          return;
        }
        try {
          this.token = await this.tokenProvider();
          this._authRefused = false;
        } catch (error) {
          console.warn("the token provider failed; retrying after the back-off", error);
        }
      }
      this._connect();
    }, delay);
  }

  /** @param {Error} error */
  _stop(error) {
    this.state = "closed";
    for (const request of this._outbox.values()) request.reject(error);
    this._outbox.clear();
    this._emit("closed", { error });
  }

  /** @param {string} text */
  _receive(text) {
    /** @type {ServerFrame} */
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      this._emit("unknown", { raw: text });
      return;
    }
    if (frame === null || typeof frame !== "object" || !SERVER_FRAME_TYPES.has(frame.type)) {
      // A newer server's answer to a request still answers it.
      const answered = frame?.ref !== undefined ? this._inFlight.get(String(frame.ref)) : undefined;
      if (answered) {
        this._inFlight.delete(String(frame.ref));
        this._settle(answered, frame);
      } else {
        this._emit("unknown", { raw: frame });
      }
      return;
    }
    if (this.welcome) this._armIdleTimer(2 * this.welcome.heartbeat_ms + 5000);
    const request = frame.ref !== undefined ? this._inFlight.get(String(frame.ref)) : undefined;
    if (request) this._inFlight.delete(String(frame.ref));
    switch (frame.type) {
      case "welcome":
        this._opened(/** @type {Welcome} */ (frame));
        break;
      case "ping":
        this._write({ type: "pong" });
        break;
      case "error":
        if (frame.code === "unauthorized") this._authRefused = true;
        break;
    }
    if (request) {
      this._answered(request, frame);
    } else if (frame.type === "message") {
      if (this._firstDelivery(frame)) this._push(frame);
    } else if (frame.type === "unsubscribed") {
      this._subscriptionEnded(frame);
      this._push(frame);
    } else if (frame.type !== "ping") {
      this._push(frame);
    }
    this._pump();
  }

  /** @param {Welcome} welcome */
  _opened(welcome) {
    this.state = "open";
    this.welcome = welcome;
    this._authRefused = false;
    this._armIdleTimer(2 * welcome.heartbeat_ms + 5000);
    this._bucket = new TokenBucket(welcome.limits.send_rate_per_second, welcome.limits.send_burst, Date.now());
    // Resubscribe first, then the outbox in its order.
    const queued = new Set([...this._outbox.values()].filter((r) => r.frame.type === "subscribe").map((r) => r.frame.event_id));
    const resubscribe = new Map();
    for (const eventId of this._subscriptions.keys()) {
      if (queued.has(eventId)) continue;
      const handle = this._nextHandle++;
      resubscribe.set(handle, {
        handle, frame: { type: "subscribe", event_id: eventId }, attempts: 0, readyAt: 0, sentAs: null,
        resolve: () => {}, reject: () => {},
      });
    }
    this._outbox = new Map([...resubscribe, ...this._outbox]);
    this._emit("connected", welcome);
  }

  /** Write what may be written now, in outbox order. */
  _pump() {
    clearTimeout(this._timer);
    if (this.state !== "open") return;
    const now = Date.now();
    let writesBlocked = false;
    let wakeAt = Infinity;
    for (const request of [...this._outbox.values()]) {
      if (request.sentAs !== null) continue;
      const isWrite = WRITES.has(request.frame.type);
      if (request.readyAt > now || (isWrite && writesBlocked)) {
        if (request.readyAt > now) wakeAt = Math.min(wakeAt, request.readyAt);
        writesBlocked ||= isWrite;
        continue;
      }
      if (isWrite && this._bucket) {
        const wait = this._bucket.take(now);
        if (wait) {
          request.readyAt = now + wait;
          wakeAt = Math.min(wakeAt, request.readyAt);
          writesBlocked = true;
          continue;
        }
      }
      this._sendRequest(request);
    }
    if (wakeAt !== Infinity) this._timer = setTimeout(() => this._pump(), wakeAt - now);
  }

  /** @param {PendingRequest} request */
  _sendRequest(request) {
    const frame = { ...request.frame };
    if (frame.type === "subscribe") {
      const sub = this._subscriptions.get(frame.event_id);
      if (!sub) {
        const refused = { type: "error", code: "not_subscribed", message: "unsubscribed before the subscription was made" };
        this._settle(request, null, new RequestFailed(refused));
        return;
      }
      if (sub.cursor) frame.since = sub.cursor;
    }
    const frameId = `c${this._nextFrameId++}`;
    const text = JSON.stringify({ ...frame, id: frameId });
    const limit = this.welcome?.limits.max_frame_bytes ?? 65536;
    if (new TextEncoder().encode(text).length > limit) {
      this._settle(request, null, new RangeError(`the ${frame.type} frame exceeds ${limit} bytes`));
      return;
    }
    request.sentAs = frameId;
    request.attempts += 1;
    this._inFlight.set(frameId, request);
    this._ws?.send(text);
  }

  /** @param {ClientFrame} frame */
  _write(frame) {
    this._ws?.send(JSON.stringify(frame));
  }

  /** @param {PendingRequest} request @param {ServerFrame} frame */
  _answered(request, frame) {
    if (frame.type !== "error") {
      if (frame.type === "subscribed") {
        const sub = this._subscriptions.get(frame.event_id);
        if (sub) {
          sub.live = true;
          if (frame.cursor) sub.cursor = frame.cursor;
        }
      }
      this._settle(request, frame);
      return;
    }
    request.sentAs = null;
    const now = Date.now();
    if (frame.code === "rate_limited") {
      request.readyAt = now + (frame.retry_after_ms ?? 0) * (1 + 0.1 * Math.random());
    } else if (RETRYABLE.has(frame.code) && !NOT_RETRIED.has(request.frame.type)) {
      request.readyAt = now + backoffDelay(this.backoff, request.attempts - 1);
    } else {
      if (request.frame.type === "subscribe") this._subscriptions.delete(request.frame.event_id);
      this._settle(request, null, new RequestFailed(frame));
    }
    this._outboxChanged();
  }

  /** @param {ServerFrame} frame @returns {boolean} */
  _firstDelivery(frame) {
    const sub = this._subscriptions.get(frame.event_id);
    if (!sub) return true;
    const id = frame.message.message_id;
    if (sub.recent.has(id)) return false;
    sub.recent.add(id);
    if (sub.recent.size > RECENT_IDS_PER_EVENT) sub.recent.delete(sub.recent.values().next().value);
    sub.cursor = frame.message.cursor;
    return true;
  }

  /** @param {ServerFrame} frame */
  _subscriptionEnded(frame) {
    const sub = this._subscriptions.get(frame.event_id);
    if (frame.reason === "resync" && sub) {
      sub.live = false;
      this.request({ type: "subscribe", event_id: frame.event_id }).catch(() => {});
    } else {
      this._subscriptions.delete(frame.event_id);
    }
  }

  /** @param {PendingRequest} request @param {ServerFrame|null} answer @param {Error} [error] */
  _settle(request, answer, error) {
    this._outbox.delete(request.handle);
    if (error) request.reject(error);
    else request.resolve(/** @type {ServerFrame} */ (answer));
    this._outboxChanged();
  }

  _outboxChanged() {
    this._emit("outbox", { pending: this._outbox.size });
  }

  /** @param {ServerFrame} frame */
  _push(frame) {
    this._emit("frame", frame);
    this._emit(frame.type, frame);
  }

  /** @param {string} type @param {any} detail */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** A fresh `client_msg_id` (letters and digits, well within the 100-character limit). */
export function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
