// interlock.js: the browser side of interlock's conversations (docs/conversations.md).
// No build step: <script src="/interlock.js"></script>, then `new InterlockSocket(url, options)`.
//
// - reconnects by itself (backoff 0.25 s doubling to 5 s), presenting the session token and the
//   last offset it saw, so the server hands over what was missed (JsonWebsocketActor.join_recovering);
// - socket.request(data, timeout) sends {"ack": id, ...data} and resolves with the server's result
//   (acks = True on the actor); socket.onask(data) answers the server's ask_client() (return a value
//   or a promise; a throw sends an error);
// - options.onmessage(data) gets every other frame; options.onsession({recovered, offset}) after
//   each (re)connect: recovered is null for a new session, false when the missed messages could
//   not be recovered (resync), true when they were.
"use strict";

class InterlockSocket {
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    this.token = null;
    this.offset = null;  // every group message up to this offset was seen
    this.seen = new Set();  // offsets seen above it
    this.nextAck = 1;
    this.pending = new Map();
    this.backoff = 250;
    this.closed = false;
    this.hold = 0;
    this.socket = null;
    this.open();
  }

  open() {
    // recover= (empty) asks for a session; recover=TOKEN&offset=N recovers what was missed.
    let url = this.url + (this.url.includes("?") ? "&" : "?") + "recover=";
    if (this.token !== null) {
      url += encodeURIComponent(this.token) + "&offset=" + encodeURIComponent(String(this.offset ?? 0));
    }
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => { this.backoff = 250; if (this.options.onopen) this.options.onopen(); };
    socket.onmessage = (event) => this.frame(JSON.parse(event.data));
    socket.onclose = (event) => this.lost(socket, event);
  }

  frame(data) {
    if (data !== null && typeof data === "object") {
      if (typeof data.offset === "number" && data.interlock === undefined) {
        // Offsets from several server processes may arrive interleaved: keep the highest
        // offset below which every one was seen (presented on reconnect) and the ones above it.
        if (this.offset !== null) {
          if (data.offset <= this.offset || this.seen.has(data.offset)) return;  // had it already
          this.seen.add(data.offset);
          while (this.seen.has(this.offset + 1)) { this.offset += 1; this.seen.delete(this.offset); }
        }
      }
      if (data.interlock === "session") {
        this.token = data.token;
        if (data.recovered !== true) { this.offset = data.offset; this.seen.clear(); }
        if (this.options.onsession) this.options.onsession(data);
        return;
      }
      if ("ack" in data && this.pending.has(data.ack)) {
        const {resolve, reject, timer} = this.pending.get(data.ack);
        this.pending.delete(data.ack);
        clearTimeout(timer);
        if (data.error) reject(new Error(`${data.error.type}: ${data.error.message}`));
        else resolve(data.result);
        return;
      }
      if ("ask" in data && this.onask) {
        this.answer(data.ask, data.data);
        return;
      }
    }
    if (this.options.onmessage) this.options.onmessage(data);
  }

  async answer(id, data) {
    try {
      const result = await this.onask(data);
      this.send({reply: id, result: result === undefined ? null : result});
    } catch (error) {
      this.send({reply: id, error: String(error)});
    }
  }

  lost(socket, event) {
    if (socket !== this.socket) return;
    for (const {reject, timer} of this.pending.values()) { clearTimeout(timer); reject(new Error("disconnected")); }
    this.pending.clear();
    if (this.options.onclose) this.options.onclose(event);
    // 4401/4408: the session cannot be recovered; start a new one. 1000/1008/4000-4399: the server meant it.
    if (event.code === 4401 || event.code === 4408 || event.code === 4400) { this.token = null; this.offset = null; this.seen.clear(); }
    else if (event.code === 1000 || event.code === 1008 || (event.code >= 4000 && event.code < 4400)) return;
    if (this.closed) return;
    setTimeout(() => { if (!this.closed) this.open(); }, Math.max(this.backoff, this.hold));
    this.hold = 0;
    this.backoff = Math.min(this.backoff * 2, 5000);
  }

  send(data) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) { this.socket.send(JSON.stringify(data)); return true; }
    return false;
  }

  request(data, timeout = 10000) {
    const id = this.nextAck++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`no ack within ${timeout} ms`)); }, timeout);
      this.pending.set(id, {resolve, reject, timer});
      if (!this.send({...data, ack: id})) { clearTimeout(timer); this.pending.delete(id); reject(new Error("not connected")); }
    });
  }

  close() { this.closed = true; if (this.socket) this.socket.close(1000); }

  // For tests and demos: drop the connection as a network would, and reconnect after holdMs.
  drop(holdMs = 0) { this.hold = holdMs; if (this.socket) this.socket.close(4999, "dropped by the page"); }
}

if (typeof window !== "undefined") window.InterlockSocket = InterlockSocket;
