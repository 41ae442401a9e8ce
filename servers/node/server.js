#!/usr/bin/env node
// duplexbench's second stack: the wire contract of servers/README.md on node:http + ws.
//
// Why it exists: the transports are compared through servers, so a server's own
// per-delivery cost is part of every verdict. This small reference implementation
// is the yardstick `make stacks` puts beside the aiohttp servers. It is written the
// Node way: a message is framed ONCE per transport (the WebSocket frame bytes, the
// SSE event, the NDJSON line) and the same Buffer is written synchronously to every
// subscriber socket; there is no per-connection queue or task. A connection's queue
// is its socket's write buffer, so the slow-consumer policy counts the messages
// written while that buffer is above its high-water mark (write() returned false).
//
// Usage: node server.js [--host H] [--port 0] [--transport all] [--retention N] ...
// The first stdout line is `duplexbench server listening on http://H:P (transports: ...)`.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const { WebSocketServer } = require('ws');

// ---------------------------------------------------------------- options

const TRANSPORTS = ['longpoll', 'stream', 'websocket'];
const DEFAULTS = {
  transport: 'all', host: '127.0.0.1', port: 8080, retention: 10000,
  'retention-bytes': 64 * 1024 * 1024, 'max-topics': 100000, 'queue-limit': 1000,
  'max-payload': 1024 * 1024, heartbeat: 15, 'ping-interval': 20, 'ping-timeout': 20,
  'poll-timeout-cap': 120, 'max-batch': 10000, 'shutdown-timeout': 5, 'slow-grace': 2,
};
const INTEGERS = ['port', 'retention', 'retention-bytes', 'max-topics', 'queue-limit', 'max-payload', 'max-batch'];
const SECONDS = ['heartbeat', 'ping-interval', 'ping-timeout', 'poll-timeout-cap', 'shutdown-timeout', 'slow-grace'];

function usageExit(message) {
  process.stderr.write(`node server.js: error: ${message}\n`);
  process.exit(2);
}

function parseOptions(argv) {
  const opts = { ...DEFAULTS, 'allow-origin': [] };
  for (let i = 0; i < argv.length; i++) {
    let [name, value] = argv[i].replace(/^--/, '').split(/=(.*)/s);
    if (!argv[i].startsWith('--')) usageExit(`unexpected argument ${argv[i]}`);
    if (name === 'uvloop') continue; // accepted so `python -m servers` flags work here too
    if (!(name in opts)) usageExit(`unknown option --${name}`);
    if (value === undefined) value = argv[++i];
    if (value === undefined) usageExit(`--${name} needs a value`);
    if (name === 'allow-origin') opts[name].push(value.trim().replace(/\/$/, '').toLowerCase());
    else opts[name] = value;
  }
  for (const name of INTEGERS) {
    const n = Number(opts[name]);
    const low = name === 'port' ? 0 : 1;
    if (!Number.isInteger(n) || n < low || (name === 'port' && n > 65535)) usageExit(`--${name} ${opts[name]}: expected an integer >= ${low}`);
    opts[name] = n;
  }
  for (const name of SECONDS) {
    const n = Number(opts[name]);
    if (!Number.isFinite(n) || n <= 0) usageExit(`--${name} ${opts[name]}: expected a positive number of seconds`);
    opts[name] = n;
  }
  if (opts.transport !== 'all' && !TRANSPORTS.includes(opts.transport)) usageExit(`--transport ${opts.transport}: expected one of ${TRANSPORTS.join(', ')}, all`);
  // The injected regressions of the regression gate are a Python-server feature: refusing
  // them is better than silently measuring an un-injected server.
  for (const env of ['DUPLEXBENCH_INJECT_DELAY_MS', 'DUPLEXBENCH_INJECT_PAD_BYTES']) {
    const v = (process.env[env] || '').trim();
    if (v && Number(v) !== 0) usageExit(`${env}=${v}: injected regressions are not supported by the Node reference`);
  }
  return opts;
}

const OPT = parseOptions(process.argv.slice(2));
const MOUNTED = OPT.transport === 'all' ? TRANSPORTS : [OPT.transport];
const ALLOW_ANY_ORIGIN = OPT['allow-origin'].includes('*');
const ALLOWED_ORIGINS = new Set(OPT['allow-origin']);

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

// ---------------------------------------------------------------- metrics

const LABELS = ['longpoll', 'sse', 'ndjson', 'websocket', 'publish', 'other'];
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
    this.subs = { websocket: new Set(), sse: new Set(), ndjson: new Set() };
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
  idle() { return this.last === 0 && this.polls.size === 0 && !this.subs.websocket.size && !this.subs.sse.size && !this.subs.ndjson.size; }
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
const sseEvent = (msg) => Buffer.concat([Buffer.from(`id: ${EPOCH}-${msg.seq}\ndata: `), msg.body, NL2]);
const NL = Buffer.from('\n');
const NL2 = Buffer.from('\n\n');
const ndjsonLine = (msg) => Buffer.concat([msg.body, NL]);
const FRAMERS = { websocket: (msg) => wsFrame(msg.body), sse: sseEvent, ndjson: ndjsonLine };
const HEARTBEATS = { sse: Buffer.from(': hb\n\n'), ndjson: NL };

// ---------------------------------------------------------------- subscriber connections

// One streaming or WebSocket subscriber. `out` is what we write to: the raw socket of a
// WebSocket (frames are pre-built) or the ServerResponse of a stream (node adds the chunking).
class Subscriber {
  constructor(kind, topic, out, drop) {
    this.kind = kind; this.topic = topic; this.out = out; this.drop = drop;
    this.open = true;
    this.blocked = false; // write() returned false: the socket buffer is above its high-water mark
    this.queued = 0; // messages written while blocked: the connection's queue
    this.fullTimer = null;
    this.lastWrite = clock;
    out.on('drain', () => this.drained());
  }
  send(buf) {
    if (!this.open) return;
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

const streamSubs = new Set(); // for heartbeats
const webSockets = new Set(); // every WebSocket (publish-only ones too): pings, shutdown

function subscribe(topic, kind, out, drop, start, preamble) {
  const sub = new Subscriber(kind, topic, out, drop);
  // The resume backlog is written before the subscriber joins the topic, in the same
  // synchronous step, so nothing is missed or doubled; it does not count against the queue.
  const frame = FRAMERS[kind];
  const parts = preamble ? [preamble] : [];
  for (const msg of topic.after(start, Infinity)) parts.push(frame(msg));
  if (parts.length) out.write(parts.length === 1 ? parts[0] : Buffer.concat(parts));
  topic.subs[kind].add(sub);
  metrics.open[kind]++;
  return sub;
}

// ---------------------------------------------------------------- publishing and fan-out

function publish(topic, data, ts) {
  const seq = topic.last + 1;
  const msg = { seq, body: encodeEnvelope(seq, topic, ts === null ? nowNs() : ts, data) };
  topic.append(msg);
  metrics.published++;
  for (const kind of ['websocket', 'sse', 'ndjson']) {
    const subs = topic.subs[kind];
    if (subs.size === 0) continue;
    const framed = FRAMERS[kind](msg); // framed once, written to every subscriber
    for (const sub of subs) sub.send(framed);
  }
  if (topic.polls.size) answerPolls(topic);
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

// ---------------------------------------------------------------- HTTP plumbing

const EPOCH_HEADER = 'Duplexbench-Epoch';
const PREFLIGHT = { 'Access-Control-Allow-Methods': 'GET, POST, OPTIONS', 'Access-Control-Allow-Headers': 'Content-Type, Last-Event-ID, Accept', 'Access-Control-Max-Age': '600' };
const ALLOW = { '/publish': 'POST, OPTIONS', '/poll': 'GET, OPTIONS', '/stream': 'GET, OPTIONS', '/ws': 'GET, OPTIONS', '/healthz': 'GET, HEAD', '/metrics': 'GET, HEAD' };
const NO_CORS = {};

// Origin policy: absent (not a browser) or same-origin passes; others need --allow-origin.
// Returns the CORS headers an allowed cross-origin request gets; throws 403 otherwise.
function originHeaders(req) {
  const raw = req.headers.origin;
  if (raw === undefined) return NO_CORS;
  const origin = raw.trim().replace(/\/$/, '').toLowerCase();
  const host = (req.headers.host || '').toLowerCase().replace(/:80$/, '');
  const m = /^http:\/\/([^/]+)$/.exec(origin); // the listener speaks plain http
  if (m && m[1].replace(/:80$/, '') === host) return NO_CORS;
  if (!ALLOW_ANY_ORIGIN && !ALLOWED_ORIGINS.has(origin)) throw new HttpError(403, { error: 'origin not allowed', origin: raw.slice(0, 200) });
  return { 'Access-Control-Allow-Origin': raw, Vary: 'Origin', 'Access-Control-Expose-Headers': EPOCH_HEADER };
}

function headersFor(cors, extra) {
  return { 'Cache-Control': 'no-cache', [EPOCH_HEADER]: EPOCH, ...cors, ...extra };
}
function sendBody(res, status, body, type, headers) {
  res.writeHead(status, { ...headers, 'Content-Type': type, 'Content-Length': body.length });
  res.end(body);
}
const sendJson = (res, status, obj, headers = {}) => sendBody(res, status, Buffer.from(JSON.stringify(obj)), 'application/json', headersFor(NO_CORS, headers));

function rawError(socket, err) { // an upgrade refused before the handshake: plain HTTP on the socket
  const body = JSON.stringify(err.body);
  const extra = Object.entries(err.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status]}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-cache\r\n${EPOCH_HEADER}: ${EPOCH}\r\n${extra}Connection: close\r\n\r\n${body}`);
}

function splitUrl(url) {
  const q = url.indexOf('?');
  return q < 0 ? [url, new URLSearchParams()] : [url.slice(0, q), new URLSearchParams(url.slice(q + 1))];
}

function routeCheck(method, path, wanted) {
  const mounted = { '/poll': 'longpoll', '/stream': 'stream', '/ws': 'websocket' }[path];
  if (!(path in ALLOW) || (mounted && !MOUNTED.includes(mounted))) throw new HttpError(404, { error: `no such path ${quote(path)}` });
  if (!wanted.includes(method)) throw new HttpError(405, { error: `method ${method} not allowed on ${path}; allowed: ${ALLOW[path]}` }, { Allow: ALLOW[path] });
}

function onRequest(req, res) {
  const [path, params] = splitUrl(req.url);
  try {
    if (req.method === 'OPTIONS' && ['/poll', '/stream', '/publish', '/ws'].includes(path)) {
      routeCheck('OPTIONS', path, ['OPTIONS']);
      const cors = originHeaders(req);
      res.writeHead(204, headersFor(cors, PREFLIGHT));
      return res.end();
    }
    switch (path) {
      case '/publish': routeCheck(req.method, path, ['POST']); return handlePublish(req, res, params, originHeaders(req));
      case '/poll': routeCheck(req.method, path, ['GET']); return handlePoll(req, res, params, originHeaders(req));
      case '/stream': routeCheck(req.method, path, ['GET']); return handleStream(req, res, params, originHeaders(req));
      case '/ws': routeCheck(req.method, path, ['GET']); metrics.requests.websocket++;
        throw bad('expected a WebSocket upgrade (Upgrade: websocket)');
      case '/healthz': routeCheck(req.method, path, ['GET', 'HEAD']); metrics.requests.other++;
        return sendJson(res, 200, { status: 'ok', transports: MOUNTED, inject: { delay_ms: 0, pad_bytes: 0 }, pid: process.pid, epoch: EPOCH, stack: 'node' });
      case '/metrics': routeCheck(req.method, path, ['GET', 'HEAD']); metrics.requests.other++;
        return sendBody(res, 200, Buffer.from(renderMetrics()), 'text/plain; version=0.0.4; charset=utf-8', headersFor(NO_CORS, {}));
      default: routeCheck(req.method, path, []);
    }
  } catch (err) {
    replyError(res, err);
  }
}

function replyError(res, err) {
  if (!(err instanceof HttpError)) {
    console.error('unexpected error:', err);
    err = new HttpError(500, { error: 'internal server error (logged)' });
  }
  if (res.headersSent) return res.destroy();
  if (err.status === 404 || err.status === 405) metrics.requests.other++;
  sendJson(res, err.status, err.body, err.headers);
}

// ---------------------------------------------------------------- POST /publish

function handlePublish(req, res, params, cors) {
  metrics.requests.publish++;
  const topicName = checkTopic(params.get('topic'));
  const ts = params.has('ts') ? parseTs(params.get('ts'), 'ts') : null;
  const limit = OPT['max-payload'];
  if (Number(req.headers['content-length']) > limit) throw new HttpError(413, { error: `payload of ${req.headers['content-length']} bytes exceeds --max-payload ${limit}` });
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  });
  req.on('end', () => {
    (async () => {
      if (size > limit) throw new HttpError(413, { error: `payload exceeds --max-payload ${limit} bytes` });
      if (closing) throw new HttpError(503, { error: 'server shutting down' });
      let data;
      try { data = UTF8.decode(Buffer.concat(chunks)); } catch { throw bad('payload is not UTF-8'); }
      const seq = await publishWhenWritable(getTopic(topicName, true), data, ts);
      sendBody(res, 200, Buffer.from(`{"seq":${seq}}`), 'application/json', headersFor(cors, {}));
    })().catch((err) => replyError(res, err));
  });
}
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------- GET /poll (RFC 6202 2)

function handlePoll(req, res, params, cors) {
  metrics.requests.longpoll++;
  const topicName = checkTopic(params.get('topic'));
  let timeout = 30;
  if (params.has('timeout')) {
    timeout = Number(params.get('timeout'));
    if (!/^\s*[\d.eE+]+\s*$/.test(params.get('timeout')) || !Number.isFinite(timeout) || timeout < 0) throw bad(`bad timeout ${quote(params.get('timeout'))}: expected a non-negative number of seconds`);
  }
  timeout = Math.min(timeout, OPT['poll-timeout-cap']);
  let max = Math.min(1000, OPT['max-batch']);
  if (params.has('max')) {
    const text = params.get('max');
    if (!/^\d{1,19}$/.test(text) || Number(text) === 0) throw bad(`bad max ${quote(text)}: expected 1-${OPT['max-batch']}`);
    max = Math.min(Number(text), OPT['max-batch']); // above --max-batch: capped
  }
  const { start, reset } = resolveCursor(topicName, params.get('cursor'));
  const headers = headersFor(cors, {});
  if (reset) {
    const topic = topics.get(topicName);
    return sendBody(res, 410, Buffer.from(JSON.stringify({ error: 'cursor from another server instance', ...reset, oldest_seq: topic ? topic.oldest : 1 })), 'application/json', headers);
  }
  const topic = topics.get(topicName);
  const batch = topic ? topic.after(start, max) : [];
  if (batch.length || timeout === 0 || closing) return answerPoll(res, batch, headers);
  // Nothing newer: hold the request until the next publish, the timeout or shutdown.
  const held = { res, start, max, headers, timer: null, topic: getTopic(topicName, true) };
  held.timer = setTimeout(() => { releasePoll(held); answerPoll(res, [], headers); }, timeout * 1000);
  held.topic.polls.add(held);
  metrics.open.longpoll++;
  res.on('close', () => releasePoll(held)); // the client went away while held
}

function releasePoll(held) {
  if (!held.topic.polls.delete(held)) return;
  clearTimeout(held.timer);
  metrics.open.longpoll--;
  forgetIfIdle(held.topic);
}

function answerPoll(res, batch, headers, body) {
  if (!batch.length) { res.writeHead(204, headers); return res.end(); }
  body = body || Buffer.concat([Buffer.from('['), ...batch.flatMap((m, i) => (i ? [COMMA, m.body] : [m.body])), Buffer.from(']')]);
  metrics.delivered.longpoll += batch.length;
  metrics.bytes.longpoll += body.length;
  sendBody(res, 200, body, 'application/json', headers);
}
const COMMA = Buffer.from(',');

// Held polls of a topic almost all hold the same cursor: one encoded batch per (cursor, max).
function answerPolls(topic) {
  const polls = topic.polls;
  const shared = new Map();
  for (const held of polls) {
    releasePoll(held);
    const key = `${held.start}:${held.max}`;
    let entry = shared.get(key);
    if (!entry) {
      const batch = topic.after(held.start, held.max);
      entry = { batch, body: null };
      shared.set(key, entry);
    }
    if (!entry.body && entry.batch.length) entry.body = Buffer.concat([Buffer.from('['), ...entry.batch.flatMap((m, i) => (i ? [COMMA, m.body] : [m.body])), Buffer.from(']')]);
    answerPoll(held.res, entry.batch, held.headers, entry.body);
  }
}

// ---------------------------------------------------------------- GET /stream (SSE or NDJSON)

function handleStream(req, res, params, cors) {
  const sse = (req.headers.accept || '').toLowerCase().includes('text/event-stream');
  const kind = sse ? 'sse' : 'ndjson';
  metrics.requests[kind]++;
  if (closing) throw new HttpError(503, { error: 'server shutting down' });
  const topicName = checkTopic(params.get('topic'));
  let cursor = params.get('cursor');
  let name = 'cursor';
  const lastEventId = sse ? (req.headers['last-event-id'] || '').trim() : '';
  if (lastEventId) [cursor, name] = [lastEventId, 'Last-Event-ID']; // it wins over ?cursor
  const { start, reset } = resolveCursor(topicName, cursor, name);
  const topic = getTopic(topicName, true);
  res.writeHead(200, headersFor(cors, { 'Content-Type': sse ? 'text/event-stream' : 'application/x-ndjson', 'X-Accel-Buffering': 'no' }));
  res.flushHeaders(); // at once: clients wait for them before publishing
  let preamble = null;
  if (sse) {
    // The id sets an EventSource's lastEventId even before the first event, so a stream
    // cut early resumes without a gap.
    preamble = reset ? `retry: 1000\n\nevent: reset\nid: ${reset.cursor}\ndata: ${JSON.stringify(reset)}\n\n` : `retry: 1000\nid: ${EPOCH}-${start}\n\n`;
  } else if (reset) preamble = JSON.stringify(reset) + '\n';
  const sub = subscribe(topic, kind, res, (why) => endStream(res, why), start, preamble && Buffer.from(preamble));
  streamSubs.add(sub);
  res.on('close', () => { streamSubs.delete(sub); sub.close('gone'); });
  res.on('error', () => {});
}

function endStream(res, why) {
  res.end(); // the final chunk goes out after everything already written
  // A peer that does not read cannot take it: its socket goes after a second.
  setTimeout(() => res.destroy(), why === 'slow' ? 1000 : OPT['shutdown-timeout'] * 1000).unref();
}

// ---------------------------------------------------------------- GET /ws (RFC 6455)

// No subprotocol (ws would pick the first one offered) and no compression: every transport
// carries the same bytes.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, handleProtocols: () => false, maxPayload: OPT['max-payload'] + 256 });
wss.on('headers', (headers, req) => { headers.push(`${EPOCH_HEADER}: ${EPOCH}`, ...req.corsLines); });

function onUpgrade(req, socket, head) {
  socket.on('error', () => {});
  const [path, params] = splitUrl(req.url);
  try {
    routeCheck(req.method, path, ['GET']);
    if (path !== '/ws') throw bad('upgrade is only offered on /ws');
    metrics.requests.websocket++;
    if (closing) throw new HttpError(503, { error: 'server shutting down' });
    const topicName = checkTopic(params.get('topic'));
    const sub = params.get('subscribe') ?? '1';
    if (sub !== '0' && sub !== '1') throw bad(`bad subscribe ${quote(sub)}: expected 0 or 1`);
    if ((req.headers.upgrade || '').toLowerCase() !== 'websocket') throw bad('expected a WebSocket upgrade (Upgrade: websocket)');
    if (req.headers['sec-websocket-version'] !== '13') throw new HttpError(426, { error: 'unsupported Sec-WebSocket-Version: this server speaks 13 (RFC 6455)' }, { 'Sec-WebSocket-Version': '13' });
    const cors = originHeaders(req);
    if (!/^[+/0-9A-Za-z]{22}==$/.test((req.headers['sec-websocket-key'] || '').trim())) throw bad('missing or invalid Sec-WebSocket-Key');
    const { start, reset } = resolveCursor(topicName, params.get('cursor'));
    const topic = getTopic(topicName, true);
    req.corsLines = Object.entries(cors).map(([k, v]) => `${k}: ${v}`);
    wss.handleUpgrade(req, socket, head, (ws) => onWebSocket(ws, socket, topic, sub === '1', start, reset));
  } catch (err) {
    if (!(err instanceof HttpError)) { console.error('unexpected error:', err); err = new HttpError(500, { error: 'internal server error (logged)' }); }
    rawError(socket, err);
  }
}

function onWebSocket(ws, socket, topic, subscribes, start, reset) {
  socket.setNoDelay(true);
  // ws answers a Close without a status code with an empty Close; the contract wants 1000.
  // Our own calls always pass a code, so an undefined one is ws echoing such a Close.
  const close = ws.close.bind(ws);
  ws.close = (code, reason) => close(code === undefined ? 1000 : code, reason);
  const state = { ws, pingSentAt: 0, lastPing: clock, sub: null };
  webSockets.add(state);
  if (subscribes) {
    // Data frames are pre-built and written to the raw socket (ws's own writes, pongs
    // and Close, are synchronous too, so frames never interleave).
    const preamble = reset ? wsFrame(Buffer.from(JSON.stringify(reset))) : null;
    state.sub = subscribe(topic, 'websocket', socket, (why) => {
      ws.close(why === 'slow' ? 1008 : 1001, why === 'slow' ? 'slow consumer' : 'server shutdown');
      if (why === 'slow') setTimeout(() => socket.destroy(), 1000).unref();
    }, start, preamble);
  } else metrics.open.websocket++;
  ws.on('pong', () => { state.pingSentAt = 0; });
  ws.on('error', () => {}); // ws has already closed with 1007 / 1009 / 1002
  ws.on('close', () => {
    webSockets.delete(state);
    if (state.sub) state.sub.close('gone'); else metrics.open.websocket--;
    forgetIfIdle(topic);
  });
  ws.on('message', (data, isBinary) => {
    const stop = (code, reason) => { if (state.sub) state.sub.open && state.sub.close('gone'); ws.close(code, reason); };
    if (isBinary) return stop(1008, 'binary frames are not publishes');
    let frame;
    try { frame = decodePublish(data.toString()); } catch (err) { return stop(1008, err.message); }
    if (Buffer.byteLength(frame.data) > OPT['max-payload']) return stop(1009, `data exceeds ${OPT['max-payload']} bytes`);
    if (closing) return; // shutdown: publishes are no longer read
    if (topic.full === 0) { publish(topic, frame.data, frame.ts ?? nowNs()); return; }
    // A subscriber of this topic is full: stop reading this publisher until it drains.
    ws.pause();
    publishWhenWritable(topic, frame.data, frame.ts ?? nowNs()).then(() => ws.resume());
  });
}

// A publish frame: {"data": "...", "ts": NS}; ts optional, a JSON integer or a string of
// digits (JavaScript clients send String(bigint)). The integer's digits are read from the
// text itself: JSON.parse would round anything above 2^53.
function decodePublish(text) {
  let obj;
  try { obj = JSON.parse(text); } catch (err) { throw new Error(`publish frame is not JSON: ${err.message}`.slice(0, 120)); }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj) || typeof obj.data !== 'string') throw new Error('publish frame must be {"data": "...", "ts": NS}');
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

// ---------------------------------------------------------------- timers: heartbeats, pings

// One tick for every connection rather than a timer each: heartbeats go out after
// --heartbeat s without any write on that connection; pings every --ping-interval s.
const TICK_MS = Math.max(20, Math.min(1000, OPT.heartbeat * 250, OPT['ping-interval'] * 250));
setInterval(() => {
  clock = Date.now();
  const silence = OPT.heartbeat * 1000;
  for (const sub of streamSubs) {
    if (sub.open && !sub.blocked && clock - sub.lastWrite >= silence) {
      const hb = HEARTBEATS[sub.kind];
      sub.out.write(hb);
      sub.lastWrite = clock;
      metrics.bytes[sub.kind] += hb.length;
    }
  }
  for (const state of webSockets) {
    if (state.pingSentAt && clock - state.pingSentAt > OPT['ping-timeout'] * 1000) { state.ws.terminate(); continue; }
    if (!state.pingSentAt && clock - state.lastPing >= OPT['ping-interval'] * 1000) {
      state.pingSentAt = state.lastPing = clock;
      state.ws.ping();
    }
  }
}, TICK_MS).unref();

// ---------------------------------------------------------------- server, shutdown

let closing = false;
const sockets = new Set();
const server = http.createServer({ noDelay: true, keepAlive: true }, onRequest);
server.keepAliveTimeout = 65000; // pollers reuse their connection; idle ones go after this
server.headersTimeout = 66000;
server.requestTimeout = 0; // streams and held polls are long by design
server.on('upgrade', onUpgrade);
server.on('connection', (socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)); });
server.on('error', (err) => {
  process.stderr.write(`node server.js: error: cannot listen on ${OPT.host}:${OPT.port}: ${err.message}\n`);
  process.exit(1);
});

server.listen(OPT.port, OPT.host, () => {
  const { port } = server.address();
  const host = OPT.host.includes(':') ? `[${OPT.host}]` : OPT.host;
  process.stdout.write(`duplexbench server listening on http://${host}:${port} (transports: ${MOUNTED.join(', ')})\n`);
});

// Graceful: stop accepting and reading publishes; everything already published is in the
// subscribers' socket buffers (fan-out is synchronous), so ending streams, answering held
// polls 204 and closing WebSockets 1001 comes after it; exit once sockets are gone or after
// --shutdown-timeout.
function shutdown() {
  if (closing) return;
  closing = true;
  server.close();
  for (const topic of topics.values()) {
    for (const held of topic.polls) { releasePoll(held); answerPoll(held.res, [], held.headers); }
    for (const kind of ['sse', 'ndjson']) for (const sub of topic.subs[kind]) sub.close('shutdown');
  }
  for (const state of webSockets) {
    if (state.sub) state.sub.close('shutdown'); else state.ws.close(1001, 'server shutdown');
  }
  const deadline = Date.now() + OPT['shutdown-timeout'] * 1000;
  setInterval(() => {
    server.closeIdleConnections();
    if (sockets.size === 0 || Date.now() > deadline) process.exit(0);
  }, 20);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
