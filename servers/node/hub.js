// The hub of the Node reference: topics, retention, cursors, framing once per transport,
// subscribers whose queue is their socket's write buffer, and the synchronous fan-out.
// Pure bookkeeping plus writes to the sockets handed in; HTTP and WebSocket are server.js's,
// plain TCP is tcp.js's.
'use strict';

const crypto = require('node:crypto');
const OPT = require('./options');

// The long-polling side answers held polls; it registers itself here (publish calls it).
const hooks = { heldPolls: () => {} };
// ---------------------------------------------------------------- identity and clock

// The epoch names this server instance: cursors of another instance are never served as ours.
const EPOCH = crypto.randomBytes(5).toString('hex').slice(0, 8);
// Wall-clock nanoseconds as a BigInt (ts exceeds 2^53; a Number would round it).
const NS_OFFSET = BigInt(Date.now()) * 1000000n - process.hrtime.bigint();
const nowNs = () => process.hrtime.bigint() + NS_OFFSET;
const TS_LIMIT = 1n << 63n;
// A coarse clock (ms) for heartbeats and slow-consumer timing, updated by the tick: a
// Date.now() per delivery would cost more than the rest of the bookkeeping.
let clock = Date.now();
const tickClock = () => (clock = Date.now());

// DUPLEXBENCH_INJECT_CPU_US: CPU spent per delivered message, a busy-wait on the process's
// CPU clock (a timer would cost nothing; a wall clock would count time spent preempted on a
// busy machine, and spend less than asked), wherever a delivery is written.
const CPU_NS = BigInt(OPT['inject-cpu-us']) * 1000n;
const cpuNs = () => {
  const used = process.cpuUsage();
  return BigInt(used.user + used.system) * 1000n;
};
function burn(ns) {
  const end = cpuNs() + ns;
  while (cpuNs() < end);
}

// ---------------------------------------------------------------- metrics

const LABELS = ['longpoll', 'sse', 'ndjson', 'websocket', 'tcp', 'publish', 'other'];
const counters = () => Object.fromEntries(LABELS.map((l) => [l, 0]));
const metrics = { open: counters(), requests: counters(), published: 0, delivered: counters(), bytes: counters(), slow: counters() };

function renderMetrics() {
  const out = [];
  const family = (name, kind, help, values) => {
    out.push(`# HELP duplexbench_${name} ${help}`, `# TYPE duplexbench_${name} ${kind}`);
    for (const l of LABELS) if (values[l] || (l !== 'publish' && l !== 'other')) out.push(`duplexbench_${name}{transport="${l}"} ${values[l]}`);
  };
  family('connections_open', 'gauge', 'Open subscriber connections.', metrics.open);
  family('http_requests_total', 'counter', 'HTTP requests (upgrades included).', metrics.requests);
  out.push('# HELP duplexbench_messages_published_total Messages accepted by the hub.',
    '# TYPE duplexbench_messages_published_total counter', `duplexbench_messages_published_total ${metrics.published}`);
  family('messages_delivered_total', 'counter', 'Envelopes written to subscribers.', metrics.delivered);
  family('bytes_written_total', 'counter', 'Body bytes written to subscribers, framing included.', metrics.bytes);
  family('slow_consumer_drops_total', 'counter', 'Connections dropped as slow consumers.', metrics.slow);
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------- errors

class HttpError extends Error {
  constructor(status, body, headers = {}) { super(body.error); this.status = status; this.body = body; this.headers = headers; }
}
const bad = (error, extra = {}) => new HttpError(400, { error, ...extra });
const quote = (s) => JSON.stringify(String(s).slice(0, 80));

// ---------------------------------------------------------------- topics and retention

const TOPIC_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const topics = new Map();

class Topic {
  constructor(name) {
    this.name = name;
    this.json = JSON.stringify(name); // encoded once, reused in every envelope
    this.msgs = []; // retained {seq, body}; msgs[head] is the oldest
    this.head = 0;
    this.last = 0; // seq of the newest message ever published
    this.bytes = 0;
    this.subs = { websocket: new Set(), sse: new Set(), ndjson: new Set(), tcp: new Set() };
    this.polls = new Set(); // held long polls, answered by the next publish
    this.full = 0; // subscribers whose queue is full: publishers wait while > 0
    this.writableWaiters = [];
  }
  get oldest() { return this.head < this.msgs.length ? this.msgs[this.head].seq : this.last + 1; }
  append(msg) {
    this.msgs.push(msg);
    this.last = msg.seq;
    this.bytes += msg.body.length;
    // Both bounds, but the newest message is always kept whatever its size.
    while (this.msgs.length - this.head > 1 &&
           (this.msgs.length - this.head > OPT.retention || this.bytes > OPT['retention-bytes'])) {
      this.bytes -= this.msgs[this.head].body.length;
      this.msgs[this.head++] = undefined;
    }
    if (this.head > 1024 && this.head * 2 > this.msgs.length) { this.msgs = this.msgs.slice(this.head); this.head = 0; }
  }
  after(cursor, limit) { // retained messages with seq > cursor, oldest first
    const first = Math.max(cursor + 1, this.oldest);
    const i = this.head + (first - this.oldest);
    return this.msgs.slice(i, Math.min(this.msgs.length, i + limit));
  }
  idle() { return this.last === 0 && this.polls.size === 0 && !this.subs.websocket.size && !this.subs.sse.size && !this.subs.ndjson.size && !this.subs.tcp.size; }
  whenWritable() { return this.full === 0 ? null : new Promise((resolve) => this.writableWaiters.push(resolve)); }
  releasePublishers() {
    if (this.full > 0) return;
    const waiters = this.writableWaiters;
    this.writableWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function getTopic(name, create) {
  let topic = topics.get(name);
  if (!topic && create) {
    if (topics.size >= OPT['max-topics']) throw new HttpError(503, { error: `the server holds its maximum of ${OPT['max-topics']} topics` });
    topic = new Topic(name);
    topics.set(name, topic);
  }
  return topic;
}
const forgetIfIdle = (topic) => { if (topic.idle()) topics.delete(topic.name); };

function checkTopic(name) {
  if (!name) throw bad('missing topic: add ?topic=NAME');
  if (!TOPIC_RE.test(name)) throw bad(`bad topic ${quote(name)}: use 1-64 characters of A-Z a-z 0-9 _ . -`);
  return name;
}

// Where a client starts: {start: the last seq it holds, reset: the reset object or null}.
// Cursors are `E-N` (seq N of epoch E) or a legacy plain N (no restart detection).
function resolveCursor(topicName, text, name = 'cursor') {
  const topic = topics.get(topicName);
  const last = topic ? topic.last : 0;
  const oldest = topic ? topic.oldest : 1;
  if (text === null || text === undefined) return { start: last, reset: null }; // from now on
  const m = /^(?:([a-z0-9]{1,16})-)?(\d{1,19})$/.exec(text);
  if (!m) throw bad(`bad ${name} ${quote(text)}: expected EPOCH-SEQ or a non-negative integer`);
  if (m[1] !== undefined && m[1] !== EPOCH) { // a cursor of another instance: a restart
    const k = oldest - 1;
    return { start: k, reset: { event: 'reset', epoch: EPOCH, cursor: `${EPOCH}-${k}`, last_seq: last } };
  }
  const seq = Number(m[2]);
  if (seq === 0) return { start: oldest - 1, reset: null }; // from the start of what is retained
  if (seq > last) throw bad(`cursor ${m[2]} is ahead of the topic's last seq ${last}`, { last_seq: last });
  if (seq < oldest - 1) {
    throw new HttpError(410, { error: `cursor ${seq} is older than the retention window: the oldest retained seq is ${oldest}`,
      epoch: EPOCH, oldest_seq: oldest, cursor: `${EPOCH}-${oldest - 1}` });
  }
  return { start: seq, reset: null };
}

// ---------------------------------------------------------------- framing (once per message and transport)

// The envelope: compact JSON, keys seq, topic, ts, data. ts is kept as its decimal digits so
// it is never rounded to a double; JSON.stringify escapes exactly as Python's
// json.dumps(ensure_ascii=False) does for well-formed text, so the bytes are the same.
const encodeEnvelope = (seq, topic, ts, data) => Buffer.from(`{"seq":${seq},"topic":${topic.json},"ts":${ts},"data":${JSON.stringify(data)}}`);

function wsFrame(payload) { // one unmasked FIN text frame (RFC 6455 5.2)
  const n = payload.length;
  const size = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(size + n);
  frame[0] = 0x81;
  if (n < 126) frame[1] = n;
  else if (n < 65536) { frame[1] = 126; frame.writeUInt16BE(n, 2); }
  else { frame[1] = 127; frame.writeBigUInt64BE(BigInt(n), 2); }
  payload.copy(frame, size);
  return frame;
}
// Streams over HTTP/1.1 are chunked: the chunk framing is encoded once too, and the chunk is
// written to the raw socket like a WebSocket frame (res.write would frame it per subscriber).
// Over HTTP/2 a stream carries the bare event (HTTP/2 frames it: DATA frames, no chunks).
const CRLF = Buffer.from('\r\n');
const chunk = (body) => Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, CRLF]);
const NL = Buffer.from('\n');
const NL2 = Buffer.from('\n\n');
const sseEvent = (msg) => Buffer.concat([Buffer.from(`id: ${EPOCH}-${msg.seq}\ndata: `), msg.body, NL2]);
const ndjsonLine = (msg) => Buffer.concat([msg.body, NL]);
const tcpLine = (msg) => Buffer.concat([msg.body, NL]); // plain TCP: the envelope and a newline
// The transport's own framing of a message (what an HTTP/2 stream, a WebSocket or a TCP
// connection carries).
const FRAMERS = { websocket: (msg) => wsFrame(msg.body), sse: sseEvent, ndjson: ndjsonLine, tcp: tcpLine };
// Which kinds are chunked when the connection is HTTP/1.1 (a WebSocket frame or a TCP line never is).
const CHUNKED = { websocket: false, sse: true, ndjson: true, tcp: false };
const HB_BODY = { sse: Buffer.from(': hb\n\n'), ndjson: NL, tcp: NL };
const HEARTBEATS = { sse: chunk(HB_BODY.sse), ndjson: chunk(NL), tcp: NL }; // HTTP/1.1 (and TCP)
const HEARTBEATS_H2 = HB_BODY; // HTTP/2: the bare heartbeat in a DATA frame

// ---------------------------------------------------------------- subscriber connections

// One streaming or WebSocket subscriber. `out` is the raw socket it is written to: frames
// and chunks are pre-built, so a delivery is one socket.write of a shared Buffer.
class Subscriber {
  constructor(kind, topic, out, drop, h2) {
    this.kind = kind; this.topic = topic; this.out = out; this.drop = drop;
    // HTTP/1.1 streams get chunks; HTTP/2 streams (out = the Http2Stream) and WebSockets
    // (over either) get the transport's framing as it is.
    this.chunked = CHUNKED[kind] && !h2;
    this.heartbeat = h2 ? HEARTBEATS_H2[kind] : HEARTBEATS[kind];
    this.open = true;
    this.blocked = false; // write() returned false: the socket buffer is above its high-water mark
    this.queued = 0; // messages written while blocked: the connection's queue
    this.fullTimer = null;
    this.lastWrite = tickClock(); // a fresh read per subscription (the tick's may be late)
    out.on('drain', () => this.drained());
  }
  send(buf) {
    if (!this.open) return;
    if (CPU_NS) burn(CPU_NS);
    const ok = this.out.write(buf);
    this.lastWrite = clock;
    metrics.delivered[this.kind]++;
    metrics.bytes[this.kind] += buf.length;
    if (this.blocked) { if (++this.queued >= OPT['queue-limit'] && !this.fullTimer) this.becameFull(); }
    else if (!ok) this.blocked = true;
  }
  // Full: the topic's publishers wait (fairness under bursts); still full after --slow-grace
  // seconds = a slow consumer, dropped so it cannot hold the others back any longer.
  becameFull() {
    this.topic.full++;
    this.fullTimer = setTimeout(() => { metrics.slow[this.kind]++; this.close('slow'); }, OPT['slow-grace'] * 1000);
  }
  drained() {
    this.blocked = false;
    this.queued = 0;
    this.clearFull();
  }
  clearFull() {
    if (!this.fullTimer) return;
    clearTimeout(this.fullTimer);
    this.fullTimer = null;
    this.topic.full--;
    this.topic.releasePublishers();
  }
  // Leave the topic at once (no write more); `why` is 'slow', 'shutdown' or 'gone'.
  close(why) {
    if (!this.open) return;
    this.open = false;
    this.clearFull();
    this.topic.subs[this.kind].delete(this);
    metrics.open[this.kind]--;
    forgetIfIdle(this.topic);
    if (why !== 'gone') this.drop(why);
  }
}

// `h2`: `out` is an HTTP/2 stream (no chunk framing); `preamble` is the bare bytes to send
// first (the SSE preamble or the reset object, framed by the caller for a WebSocket).
function subscribe(topic, kind, out, drop, start, preamble, h2 = false) {
  const sub = new Subscriber(kind, topic, out, drop, h2);
  // The resume backlog is written before the subscriber joins the topic, in the same
  // synchronous step, so nothing is missed or doubled; it does not count against the queue.
  const frame = sub.chunked ? (msg) => chunk(FRAMERS[kind](msg)) : FRAMERS[kind];
  const parts = preamble ? [sub.chunked ? chunk(preamble) : preamble] : [];
  const backlog = topic.after(start, Infinity);
  for (const msg of backlog) parts.push(frame(msg));
  if (CPU_NS && backlog.length) burn(CPU_NS * BigInt(backlog.length));
  if (parts.length) out.write(parts.length === 1 ? parts[0] : Buffer.concat(parts));
  topic.subs[kind].add(sub);
  metrics.open[kind]++;
  return sub;
}

// ---------------------------------------------------------------- publishing and fan-out

function publish(topic, data, ts) {
  // One clock read per publish (not per delivery), as the aiohttp hub does: a write stamped
  // with the tick's clock could be a tick (or, on a busy machine, a late tick) old, and the
  // next heartbeat then came that much too early after a message.
  tickClock();
  const seq = topic.last + 1;
  const msg = { seq, body: encodeEnvelope(seq, topic, ts === null ? nowNs() : ts, data) };
  topic.append(msg);
  metrics.published++;
  for (const kind of ['websocket', 'sse', 'ndjson', 'tcp']) {
    const subs = topic.subs[kind];
    if (subs.size === 0) continue;
    // Framed once per wire form (bare, or an HTTP/1.1 chunk of it), written to every subscriber.
    const framed = FRAMERS[kind](msg);
    let chunked = null;
    for (const sub of subs) sub.send(sub.chunked ? (chunked || (chunked = chunk(framed))) : framed);
  }
  if (topic.polls.size) hooks.heldPolls(topic);
  return seq;
}

// Publish a decoded message once none of the topic's subscribers has a full queue.
async function publishWhenWritable(topic, data, ts) {
  let wait;
  while ((wait = topic.whenWritable()) !== null) await wait;
  return publish(topic, data, ts);
}

function parseTs(text, what) { // decimal digits, 0 <= ts < 2^63, kept as normalised digits
  if (!/^\d{1,19}$/.test(text) || BigInt(text) >= TS_LIMIT) throw bad(`bad ${what} ${quote(text)}: expected an integer of nanoseconds, 0 <= ts < 2^63`);
  return BigInt(text).toString();
}


// A publish frame: {"data": "...", "ts": NS}; ts optional, a JSON integer or a string of
// digits (JavaScript clients send String(bigint)). The integer's digits are read from the
// text itself: JSON.parse would round anything above 2^53.
function decodePublish(text) {
  let obj;
  try { obj = JSON.parse(text); } catch (err) { throw new Error(`publish frame is not JSON: ${err.message}`.slice(0, 120)); }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj) || typeof obj.data !== 'string') throw new Error('publish frame must be {"data": "...", "ts": NS}');
  // A \u escape can smuggle in a lone surrogate, which no UTF-8 envelope can carry.
  if (!obj.data.isWellFormed()) throw new Error('publish frame data holds a lone surrogate escape: not UTF-8 text');
  let ts = null;
  if (typeof obj.ts === 'string') ts = obj.ts;
  else if (typeof obj.ts === 'number') ts = topLevelNumberText(text, 'ts');
  else if (obj.ts !== undefined && obj.ts !== null) ts = '-';
  if (ts !== null && (!/^\d{1,19}$/.test(ts) || BigInt(ts) >= TS_LIMIT)) throw new Error('publish frame ts must be an integer of nanoseconds, 0 <= ts < 2^63');
  return { data: obj.data, ts: ts === null ? null : BigInt(ts).toString() };
}

// The source text of the number that a top-level key holds (the last one, as JSON.parse
// keeps the last duplicate); `text` is known to be valid JSON.
function topLevelNumberText(text, key) {
  let depth = 0, found = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const str = text.slice(i, j + 1);
      i = j;
      if (depth !== 1) continue;
      let k = j + 1;
      while (/\s/.test(text[k])) k++;
      if (text[k] !== ':' || JSON.parse(str) !== key) continue;
      const m = /^\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(k + 1, k + 64));
      found = m ? m[1] : null;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return found;
}

module.exports = {
  CPU_NS, EPOCH, HttpError, Subscriber, TS_LIMIT, bad, burn, checkTopic, decodePublish, forgetIfIdle, getTopic, hooks,
  metrics, nowNs, now: () => clock, parseTs, publish, publishWhenWritable, quote, renderMetrics,
  resolveCursor, subscribe, tickClock, topics, wsFrame, chunk,
};
