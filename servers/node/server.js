#!/usr/bin/env node
// duplexbench's second stack: the wire contract of servers/README.md on node:http + ws
// (and node:http2: every route over HTTP/2 too, WebSocket as RFC 8441; listeners in h2.js).
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
// Usage: node server.js [--host H] [--port 0] [--transport all] [--tcp-port 0] [--retention N] ...
//        [--tls-cert F --tls-key F [--http2]] [--h2c-port P]
// The first stdout line is `duplexbench server listening on http://H:P (transports: ...)`,
// with ` and tcp://H:TP` before the parenthesis when the plain-TCP listener (tcp.js) runs.
'use strict';

const http = require('node:http');
const { WebSocketServer } = require('ws');
const OPT = require('./options');
const { acceptWebSocket, closeSessions, createListeners, listenAll, requestOrigin, sockets } = require('./h2');
const {
  CPU_NS, EPOCH, HttpError, bad, burn, checkTopic, decodePublish, forgetIfIdle, getTopic, hooks,
  metrics, nowNs, now, parseTs, publish, publishWhenWritable, quote, renderMetrics, resolveCursor,
  subscribe, tickClock, topics, wsFrame,
} = require('./hub');
const tcp = require('./tcp');

const MOUNTED = OPT.transport === 'all' ? [...OPT.TRANSPORTS] : [OPT.transport];
if (OPT['tcp-port'] !== null && !MOUNTED.includes('tcp')) MOUNTED.push('tcp'); // --tcp-port adds it
const ALLOW_ANY_ORIGIN = OPT['allow-origin'].includes('*');
const ALLOWED_ORIGINS = new Set(OPT['allow-origin']);
const streamSubs = new Set(); // for heartbeats
const webSockets = new Set(); // every WebSocket (publish-only ones too): pings, shutdown

// ---------------------------------------------------------------- HTTP plumbing

const EPOCH_HEADER = 'Duplexbench-Epoch';
const PREFLIGHT = { 'Access-Control-Allow-Methods': 'GET, POST, OPTIONS', 'Access-Control-Allow-Headers': 'Content-Type, Last-Event-ID, Accept', 'Access-Control-Max-Age': '600' };
const ALLOW = { '/publish': 'POST, OPTIONS', '/poll': 'GET, OPTIONS', '/stream': 'GET, OPTIONS', '/ws': 'GET, OPTIONS', '/healthz': 'GET, HEAD', '/metrics': 'GET, HEAD' };
const NO_CORS = {};

// Origin policy: absent (not a browser) or same-origin passes; others need --allow-origin.
// Returns the CORS headers an allowed cross-origin request gets; throws 403 otherwise.
const DEFAULT_PORT = { http: /:80$/, https: /:443$/ };
function originHeaders(req) {
  const raw = req.headers.origin;
  if (raw === undefined) return NO_CORS;
  const origin = raw.trim().replace(/\/$/, '').toLowerCase();
  const own = requestOrigin(req); // the listener's scheme; Host (HTTP/1.1) or :authority (HTTP/2)
  const m = /^(https?):\/\/([^/]+)$/.exec(origin);
  if (m && m[1] === own.scheme && m[2].replace(DEFAULT_PORT[m[1]], '') === own.host.replace(DEFAULT_PORT[m[1]], '')) return NO_CORS;
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
        return sendJson(res, 200, { status: 'ok', transports: MOUNTED, inject: { delay_ms: 0, pad_bytes: 0, cpu_us: OPT['inject-cpu-us'] }, pid: process.pid, epoch: EPOCH, tcp_port: tcp.port(), stack: 'node' });
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
  body = body || encodeBatch(batch);
  if (CPU_NS) burn(CPU_NS * BigInt(batch.length)); // DUPLEXBENCH_INJECT_CPU_US, per message
  metrics.delivered.longpoll += batch.length;
  metrics.bytes.longpoll += body.length;
  sendBody(res, 200, body, 'application/json', headers);
}
const encodeBatch = (batch) => Buffer.concat([OPEN, ...batch.flatMap((m, i) => (i ? [COMMA, m.body] : [m.body])), CLOSE]);
const [OPEN, COMMA, CLOSE] = ['[', ',', ']'].map((c) => Buffer.from(c));

// Held polls of a topic almost all hold the same cursor: one encoded batch per (cursor, max).
hooks.heldPolls = answerPolls;
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
    if (!entry.body && entry.batch.length) entry.body = encodeBatch(entry.batch);
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
  // HTTP/1.1: pre-built chunks go to the raw socket; HTTP/2: bare events to the request's own
  // stream (HTTP/2 frames them; no connection-specific headers, nothing chunked).
  const h2 = req.httpVersionMajor === 2;
  let preamble = null;
  if (sse) {
    // The id sets an EventSource's lastEventId even before the first event, so a stream
    // cut early resumes without a gap.
    preamble = reset ? `retry: 1000\n\nevent: reset\nid: ${reset.cursor}\ndata: ${JSON.stringify(reset)}\n\n` : `retry: 1000\nid: ${EPOCH}-${start}\n\n`;
  } else if (reset) preamble = JSON.stringify(reset) + '\n';
  // From here on the stream is written to the raw socket (or the Http2Stream) directly, framed
  // once per message in hub.js; res only ends it.
  const out = h2 ? res.stream : res.socket;
  const sub = subscribe(topic, kind, out, (why) => endStream(res, why), start, preamble && Buffer.from(preamble), h2);
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

// The checks of a WebSocket opening, the same for the RFC 6455 upgrade (HTTP/1.1) and the
// RFC 8441 extended CONNECT (HTTP/2); throws HttpError, returns what onWebSocket needs.
function wsOpening(req, params, h2) {
  metrics.requests.websocket++;
  if (closing) throw new HttpError(503, { error: 'server shutting down' });
  const topicName = checkTopic(params.get('topic'));
  const sub = params.get('subscribe') ?? '1';
  if (sub !== '0' && sub !== '1') throw bad(`bad subscribe ${quote(sub)}: expected 0 or 1`);
  if (h2) {
    if (req.headers[':protocol'] !== 'websocket') throw bad('expected an extended CONNECT with :protocol websocket (RFC 8441)');
  } else if ((req.headers.upgrade || '').toLowerCase() !== 'websocket') throw bad('expected a WebSocket upgrade (Upgrade: websocket)');
  if (req.headers['sec-websocket-version'] !== '13') throw new HttpError(426, { error: 'unsupported Sec-WebSocket-Version: this server speaks 13 (RFC 6455)' }, { 'Sec-WebSocket-Version': '13' });
  const cors = originHeaders(req);
  // RFC 8441 has no key: the stream itself is the handshake's proof (section 5).
  if (!h2 && !/^[+/0-9A-Za-z]{22}==$/.test((req.headers['sec-websocket-key'] || '').trim())) throw bad('missing or invalid Sec-WebSocket-Key');
  const { start, reset } = resolveCursor(topicName, params.get('cursor'));
  return { topic: getTopic(topicName, true), subscribes: sub === '1', start, reset, cors };
}

function onUpgrade(req, socket, head) {
  socket.on('error', () => {});
  const [path, params] = splitUrl(req.url);
  try {
    routeCheck(req.method, path, ['GET']);
    if (path !== '/ws') throw bad('upgrade is only offered on /ws');
    const o = wsOpening(req, params, false);
    req.corsLines = Object.entries(o.cors).map(([k, v]) => `${k}: ${v}`);
    wss.handleUpgrade(req, socket, head, (ws) => onWebSocket(ws, socket, o.topic, o.subscribes, o.start, o.reset));
  } catch (err) {
    if (!(err instanceof HttpError)) { console.error('unexpected error:', err); err = new HttpError(500, { error: 'internal server error (logged)' }); }
    rawError(socket, err);
  }
}

// HTTP/2 CONNECT (node's 'connect' event): RFC 8441 WebSockets on /ws; anything else is refused
// with a 4xx on its stream. An HTTP/1.1 CONNECT (allowHTTP1) is a proxy request: 405.
function onConnect(req, res, head) {
  if (req.httpVersionMajor !== 2) {
    res.on('error', () => {});
    return rawError(res, new HttpError(405, { error: 'CONNECT is not offered over HTTP/1.1; /ws upgrades with GET (RFC 6455)' }, { Allow: ALLOW['/ws'] }));
  }
  res.on('error', () => {});
  res.stream.on('error', () => {});
  const [path, params] = splitUrl(req.headers[':path'] || '');
  try {
    if (path !== '/ws') throw new HttpError(path in ALLOW ? 405 : 404, { error: `CONNECT is only offered on /ws (RFC 8441), not ${quote(path)}` });
    const o = wsOpening(req, params, true);
    const headers = { 'cache-control': 'no-cache', [EPOCH_HEADER.toLowerCase()]: EPOCH, ...o.cors };
    const ws = acceptWebSocket(res.stream, headers, OPT['max-payload'] + 256);
    onWebSocket(ws, res.stream, o.topic, o.subscribes, o.start, o.reset);
  } catch (err) {
    replyError(res, err);
  }
}

function onWebSocket(ws, socket, topic, subscribes, start, reset) {
  if (socket.setNoDelay) socket.setNoDelay(true); // an Http2Stream has none: its session's socket has it
  // ws answers a Close without a status code with an empty Close; the contract wants 1000.
  // Our own calls always pass a code, so an undefined one is ws echoing such a Close.
  const close = ws.close.bind(ws);
  ws.close = (code, reason) => close(code === undefined ? 1000 : code, reason);
  const state = { ws, pingSentAt: 0, lastPing: now(), sub: null };
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
// ---------------------------------------------------------------- timers: heartbeats, pings

// One tick for every connection rather than a timer each: heartbeats go out after
// --heartbeat s without any write on that connection; pings every --ping-interval s.
const TICK_MS = Math.max(20, Math.min(1000, OPT.heartbeat * 250, OPT['ping-interval'] * 250));
setInterval(() => {
  const clock = tickClock();
  const silence = OPT.heartbeat * 1000;
  for (const sub of [...streamSubs, ...tcp.subs]) {
    if (sub.open && !sub.blocked && clock - sub.lastWrite >= silence) {
      const hb = sub.heartbeat;
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
// --port (HTTP/1.1; with --tls-cert HTTPS; with --http2 also h2 via ALPN) and --h2c-port;
// --tcp-port (tcp.js) first, so the start-up line can name it.
const servers = createListeners({ request: onRequest, upgrade: onUpgrade, connect: onConnect });
const shownHost = OPT.host.includes(':') ? `[${OPT.host}]` : OPT.host;
if (MOUNTED.includes('tcp')) tcp.listen(OPT.host, OPT['tcp-port'] || 0, (port) => listenAll(servers, MOUNTED, ` and tcp://${shownHost}:${port}`));
else listenAll(servers, MOUNTED, '');

// Graceful: stop accepting and reading publishes; everything already published is in the
// subscribers' socket buffers (fan-out is synchronous), so ending streams, answering held
// polls 204 and closing WebSockets 1001 comes after it; exit once sockets are gone or after
// --shutdown-timeout.
function shutdown() {
  if (closing) return;
  closing = true;
  for (const server of servers) server.close();
  for (const topic of topics.values()) {
    for (const held of topic.polls) { releasePoll(held); answerPoll(held.res, [], held.headers); }
    for (const kind of ['sse', 'ndjson']) for (const sub of topic.subs[kind]) sub.close('shutdown');
  }
  for (const state of webSockets) {
    if (state.sub) state.sub.close('shutdown'); else state.ws.close(1001, 'server shutdown');
  }
  tcp.shutdown();
  const deadline = Date.now() + OPT['shutdown-timeout'] * 1000;
  closeSessions(); // HTTP/2: GOAWAY; open streams end as above
  setInterval(() => {
    for (const server of servers) if (server.closeIdleConnections) server.closeIdleConnections();
    if ((sockets.size === 0 && tcp.openSockets() === 0) || Date.now() > deadline) process.exit(0);
  }, 20);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
