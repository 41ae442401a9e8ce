// duplexbench browser client: subscribers and a publisher made of the browser's own
// WebSocket, EventSource and fetch, driven by duplexbench/browser (Playwright).
//
// Clock: every time here is performance.timeOrigin + performance.now() in
// milliseconds (a float): wall-clock time as this renderer maps its monotonic
// clock, the same origin in every page of the browser (Chromium computes it from
// CLOCK_MONOTONIC plus one per-process offset to CLOCK_REALTIME), coarsened by
// Chromium to 100 us with jitter on a page that is not cross-origin isolated.
// The publisher on a page stamps `ts` with the same clock in nanoseconds.
//
// `ts` exceeds 2^53, which JSON.parse rounds: it is read as the digits of the
// source text (JSON.parse's reviver context.source, Chromium >= 114), or with a
// regex when the reviver gets no context.
"use strict";

(() => {
  const now = () => performance.timeOrigin + performance.now();
  const TS_RE = /"ts":(\d+)/;

  function parseEnvelope(text) {
    let viaSource = true;
    const value = JSON.parse(text, (key, v, ctx) => {
      if (key !== "ts") return v;
      if (ctx && typeof ctx.source === "string") return ctx.source;
      viaSource = false;
      return v;
    });
    if (!viaSource && value && typeof value === "object" && !Array.isArray(value)) {
      const m = TS_RE.exec(text);
      if (m) value.ts = m[1];
    }
    return value;
  }

  function nsDigits(ms) {
    // ms since the epoch (float) -> decimal nanoseconds, exact to the float's precision.
    const whole = Math.floor(ms);
    const frac = Math.round((ms - whole) * 1e6);
    return (BigInt(whole) * 1000000n + BigInt(frac)).toString();
  }

  function payload(index, size) {
    const head = `${index}:`;
    return size <= head.length ? head : head + "x".repeat(size - head.length);
  }

  const state = {
    cfg: null,
    stopped: false,
    subs: [],         // per subscriber: {sid, seq:[], index:[], recv:[], ts:[], opened, errors, resets}
    pub: null,        // {intended:[], sent:[], ok:[], answered, failed, t0}
    errors: [],
  };

  function error(where, what) {
    if (state.errors.length < 50) state.errors.push(`${where}: ${what}`);
  }

  function record(sub, env, t) {
    if (!env || typeof env !== "object") return;
    if (env.event === "reset") { onReset(sub, env); return; }
    const data = typeof env.data === "string" ? env.data : "";
    const colon = data.indexOf(":");
    const index = colon > 0 ? parseInt(data.slice(0, colon), 10) : -1;
    sub.seq.push(env.seq);
    sub.index.push(Number.isFinite(index) ? index : -1);
    sub.recv.push(t);
    sub.ts.push(String(env.ts));
    sub.cursor = sub.epoch ? `${sub.epoch}-${env.seq}` : String(env.seq);
  }

  function onReset(sub, env) {
    // Another server instance: the gap is counted by duplexbench as lost (seqs
    // never received), never hidden; continue from the cursor the server gave.
    sub.resets += 1;
    if (env.epoch) sub.epoch = env.epoch;
    if (env.cursor) sub.cursor = String(env.cursor);
  }

  function query(cfg, extra) {
    const q = new URLSearchParams({ topic: cfg.topic, ...extra });
    return q.toString();
  }

  const backoff = (attempt) =>
    new Promise((r) => setTimeout(r, Math.random() * Math.min(5000, 100 * 2 ** attempt)));

  async function longpoll(sub, cfg) {
    let attempt = 0;
    sub.opened = now();  // the first request is issued (a connection may still be queued)
    while (!state.stopped) {
      const url = `${cfg.base}/poll?${query(cfg, {
        cursor: sub.cursor, timeout: String(cfg.poll_timeout_s), max: String(cfg.max_batch) })}`;
      let response;
      try {
        sub.requests += 1;
        response = await fetch(url, { cache: "no-store", signal: state.abort.signal });
      } catch (e) {
        if (state.stopped) return;
        sub.errors += 1; error(`poll ${sub.sid}`, e); await backoff(attempt++); continue;
      }
      const epoch = response.headers.get("Duplexbench-Epoch");
      try {
        const text = await response.text();
        const t = now();
        if (response.status === 200) {
          if (epoch) sub.epoch = epoch;
          const list = parseEnvelope(text);
          for (const env of list) record(sub, env, t);
          attempt = 0;
        } else if (response.status === 204) {
          attempt = 0;
        } else if (response.status === 410) {
          const body = parseEnvelope(text);
          if (body.event === "reset") onReset(sub, body);
          else if (body.cursor) sub.cursor = String(body.cursor);
          else if (body.oldest_seq) sub.cursor = String(body.oldest_seq - 1);
        } else {
          sub.errors += 1; error(`poll ${sub.sid}`, `HTTP ${response.status} ${text.slice(0, 200)}`);
          await backoff(attempt++);
        }
      } catch (e) {
        if (state.stopped) return;
        sub.errors += 1; error(`poll ${sub.sid}`, e); await backoff(attempt++);
      }
    }
  }

  function sse(sub, cfg) {
    const source = new EventSource(`${cfg.base}/stream?${query(cfg, { cursor: sub.cursor })}`);
    sub.close = () => source.close();
    sub.state = () => source.readyState;  // 0 connecting, 1 open, 2 closed
    source.onopen = () => { if (!sub.opened) sub.opened = now(); };
    source.onmessage = (e) => {
      const t = now();
      try { record(sub, parseEnvelope(e.data), t); } catch (err) { sub.errors += 1; error(`sse ${sub.sid}`, err); }
      if (e.lastEventId) sub.cursor = e.lastEventId;  // "E-N": the epoch comes with it
    };
    source.addEventListener("reset", (e) => { try { onReset(sub, parseEnvelope(e.data)); } catch (err) { error("reset", err); } });
    // EventSource reconnects by itself with Last-Event-ID; count the reconnections.
    source.onerror = () => { if (!state.stopped) { sub.reconnects += 1; } };
  }

  async function ndjson(sub, cfg) {
    let attempt = 0;
    while (!state.stopped) {
      try {
        const response = await fetch(`${cfg.base}/stream?${query(cfg, { cursor: sub.cursor })}`,
          { headers: { Accept: "application/x-ndjson" }, cache: "no-store", signal: state.abort.signal });
        if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
        const epoch = response.headers.get("Duplexbench-Epoch");
        if (epoch) sub.epoch = epoch;
        if (!sub.opened) sub.opened = now();
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const t = now();
          buffer += decoder.decode(value, { stream: true });
          let nl;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (line) record(sub, parseEnvelope(line), t);
          }
        }
        attempt = 0;
      } catch (e) {
        if (state.stopped) return;
        sub.errors += 1; error(`ndjson ${sub.sid}`, e);
      }
      if (!state.stopped) { sub.reconnects += 1; await backoff(attempt++); }
    }
  }

  function websocket(sub, cfg, attempt = 0) {
    const socket = new WebSocket(`${cfg.ws_base}/ws?${query(cfg, { cursor: sub.cursor })}`);
    sub.close = () => socket.close(1000);
    socket.onopen = () => { if (!sub.opened) sub.opened = now(); attempt = 0; };
    socket.onmessage = (e) => {
      const t = now();
      try { record(sub, parseEnvelope(e.data), t); } catch (err) { sub.errors += 1; error(`ws ${sub.sid}`, err); }
    };
    socket.onclose = async (e) => {
      if (state.stopped) return;
      sub.reconnects += 1; error(`ws ${sub.sid}`, `closed ${e.code} ${e.reason}`);
      await backoff(attempt);
      if (!state.stopped) websocket(sub, cfg, attempt + 1);
    };
  }

  function publishSocket(cfg) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`${cfg.ws_base}/ws?${query(cfg, { subscribe: "0" })}`);
      socket.onopen = () => resolve(socket);
      socket.onerror = () => reject(new Error("publish socket failed"));
    });
  }

  async function publisher(cfg) {
    const n = cfg.offsets_ms.length;
    const pub = { intended: new Array(n).fill(0), sent: new Array(n).fill(0), ok: new Array(n).fill(false),
                  answered: 0, failed: 0, attempted: 0, t0: 0, done: false };
    state.pub = pub;
    const socket = cfg.upstream === "transport" && cfg.transport === "websocket" ? await publishSocket(cfg) : null;
    if (socket) state.pubSocket = socket;
    pub.t0 = now() + cfg.start_delay_ms;
    let i = 0;
    while (i < n && !state.stopped) {
      const t = now();
      // Open loop: everything due goes out now, late or not (latency is measured from `intended`).
      while (i < n && pub.t0 + cfg.offsets_ms[i] <= t) {
        const index = i++;
        pub.intended[index] = pub.t0 + cfg.offsets_ms[index];
        const sentAt = now();
        pub.sent[index] = sentAt;
        pub.attempted += 1;
        const data = payload(index, cfg.payload_bytes);
        if (socket) {
          // ts as a JSON integer written from its digits (never through a float).
          socket.send(`{"data":${JSON.stringify(data)},"ts":${nsDigits(sentAt)}}`);
          pub.ok[index] = true; pub.answered += 1;
        } else {
          fetch(`${cfg.base}/publish?${query(cfg, { ts: nsDigits(sentAt) })}`,
                { method: "POST", body: data, headers: { "Content-Type": "text/plain" }, cache: "no-store" })
            .then(async (r) => {
              await r.text();
              // Only what completed within the point counts: stop() closes the subscribers,
              // which frees connections that queued publishes (the connection limit) then use.
              if (state.stopped) return;
              pub.answered += 1;
              if (r.ok) pub.ok[index] = true; else { pub.failed += 1; error("publish", `HTTP ${r.status}`); }
            })
            .catch((e) => { if (!state.stopped) { pub.failed += 1; error("publish", e); } });
        }
      }
      if (i < n) {
        const wait = pub.t0 + cfg.offsets_ms[i] - now();
        await new Promise((r) => setTimeout(r, Math.max(0, wait)));
      }
    }
    pub.done = true;
  }

  window.duplexbench = {
    version: 1,
    start(cfg) {
      state.cfg = cfg;
      state.stopped = false;
      state.abort = new AbortController();
      for (const sid of cfg.subscribers) {
        const sub = { sid, seq: [], index: [], recv: [], ts: [], cursor: "0", epoch: "",
                      opened: 0, errors: 0, resets: 0, reconnects: 0, requests: 0, close: null };
        state.subs.push(sub);
        if (cfg.transport === "longpoll") longpoll(sub, cfg);
        else if (cfg.transport === "sse") sse(sub, cfg);
        else if (cfg.transport === "ndjson") ndjson(sub, cfg);
        else if (cfg.transport === "websocket") websocket(sub, cfg);
        else throw new Error(`unknown transport ${cfg.transport}`);
      }
      return { subscribers: state.subs.length, timeOrigin: performance.timeOrigin };
    },
    publish(cfg) {
      // Resolves at once; the publisher runs in the background (poll stats()).
      publisher(cfg).catch((e) => { error("publisher", e); if (state.pub) state.pub.done = true; });
      return true;
    },
    stats() {
      let delivered = 0, opened = 0;
      for (const sub of state.subs) { delivered += sub.seq.length; if (sub.opened) opened += 1; }
      const pub = state.pub;
      return { delivered, opened, subscribers: state.subs.length,
               sent: pub ? pub.attempted : 0, answered: pub ? pub.answered : 0,
               publish_done: pub ? pub.done : false, now: now() };
    },
    stop() {
      for (const sub of state.subs) if (sub.state) sub.finalState = sub.state();
      state.stopped = true;
      if (state.abort) state.abort.abort();
      for (const sub of state.subs) if (sub.close) sub.close();
      if (state.pubSocket) state.pubSocket.close(1000);
      return true;
    },
    results() {
      const subs = state.subs.map((s) => ({ sid: s.sid, seq: s.seq, index: s.index, recv: s.recv, ts: s.ts,
        opened: s.opened, state: s.finalState === undefined ? null : s.finalState, errors: s.errors, resets: s.resets, reconnects: s.reconnects, requests: s.requests }));
      return { subs, pub: state.pub, errors: state.errors };
    },
  };
})();
