// Plain TCP lines (duplexbench/contract/tcp.py, servers/README.md) on node:net: a second
// listener on the same hub, the floor under every other transport.
//
// Client: a subscribe line {"topic":"T","cursor":"E-N"} ("subscribe":false: publish-only),
// then publish lines {"data":"...","ts":NS}. Server: the hello line (or the reset object,
// or an error line {"error","status",...} and the end), then one envelope + "\n" per
// message, a blank line as heartbeat. A subscriber is a hub Subscriber of kind 'tcp' like
// any other: the same Buffer written synchronously to every socket, its queue the socket's
// write buffer, the burst rule and slow consumers as for streams and WebSockets.
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const OPT = require('./options');
const {
  EPOCH, HttpError, decodePublish, getTopic, metrics, nowNs, publish, publishWhenWritable, quote,
  resolveCursor, subscribe,
} = require('./hub');

const MAX_LINE = OPT['max-payload'] + 256; // the JSON around the data, as WebSocket's frame limit
const LINGER_MS = 1000; // after an error line: time to take it and go before the socket is destroyed
const CURSOR_RE = /^(?:[a-z0-9]{1,16}-)?\d{1,19}$/;
const TOPIC_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const subs = new Set(); // subscribed connections' hub Subscribers: server.js's tick heartbeats them
const conns = new Set();
let closing = false;
let server = null;

const errorLine = (status, error, extra = {}) => Buffer.from(JSON.stringify({ error, status, ...extra }) + '\n');
const hello = (start) => Buffer.from(start === null
  ? `{"event":"hello","epoch":"${EPOCH}"}\n`
  : `{"event":"hello","epoch":"${EPOCH}","cursor":"${EPOCH}-${start}"}\n`);
// Python's bytes.strip(): a line of whitespace only is blank (ignored).
function isBlank(line) {
  for (const b of line) if (b !== 32 && (b < 9 || b > 13)) return false;
  return true;
}

function onConnection(socket) {
  const conn = { socket, topic: null, sub: null, pending: null, held: null, done: false };
  conns.add(conn);
  metrics.open.tcp++; // every connection, from accept to close (or its subscriber's end)
  socket.on('data', (data) => onData(conn, data));
  socket.on('error', () => {});
  socket.on('close', () => {
    conns.delete(conn);
    if (conn.sub) { subs.delete(conn.sub); conn.sub.close('gone'); } else metrics.open.tcp--;
  });
  // The client's EOF ends the connection: net.Server's allowHalfOpen is false, so Node ends
  // our side too once what is written has gone out.
}

function onData(conn, data) {
  if (conn.done) return; // lingering after an error line: what the client still sends is dropped
  const buf = conn.pending ? Buffer.concat([conn.pending, data]) : data;
  const lines = [];
  let start = 0;
  let nl;
  while ((nl = buf.indexOf(10, start)) !== -1) {
    if (nl - start > MAX_LINE) return fail(conn, 413, `line exceeds ${MAX_LINE} bytes`);
    lines.push(buf.subarray(start, nl));
    start = nl + 1;
  }
  conn.pending = start < buf.length ? buf.subarray(start) : null;
  if (conn.pending && conn.pending.length > MAX_LINE) return fail(conn, 413, `line exceeds ${MAX_LINE} bytes`);
  if (conn.held) conn.held.push(...lines);
  else handle(conn, lines);
}

function handle(conn, lines) {
  for (let i = 0; i < lines.length && !conn.done; i++) {
    if (isBlank(lines[i])) continue;
    if (conn.topic === null) subscribeLine(conn, lines[i]);
    else if (publishLine(conn, lines[i])) { conn.held.push(...lines.slice(i + 1)); return; }
  }
}

function subscribeLine(conn, line) {
  let req;
  try { req = JSON.parse(UTF8.decode(line)); } catch (err) { return fail(conn, 400, `subscribe line is not JSON: ${err.message}`.slice(0, 200)); }
  if (!req || typeof req !== 'object' || Array.isArray(req)) return fail(conn, 400, 'subscribe line must be {"topic": "T", "cursor": "E-N"}');
  const name = req.topic;
  if (typeof name !== 'string' || !name) return fail(conn, 400, 'subscribe line needs "topic": a string of 1-64 A-Z a-z 0-9 _ . -');
  if (!TOPIC_RE.test(name)) return fail(conn, 400, `bad topic ${quote(name)}: use 1-64 characters of A-Z a-z 0-9 _ . -`);
  const cursor = req.cursor ?? null;
  if (cursor !== null && typeof cursor !== 'string') return fail(conn, 400, 'subscribe line cursor must be a string "E-N" or "N"');
  if (cursor !== null && !CURSOR_RE.test(cursor)) return fail(conn, 400, `bad cursor ${quote(cursor)}: expected EPOCH-SEQ or a non-negative integer`);
  const subscribes = 'subscribe' in req ? req.subscribe : true;
  if (typeof subscribes !== 'boolean') return fail(conn, 400, 'subscribe line subscribe must be true or false');
  conn.topic = name;
  if (!subscribes) return void conn.socket.write(hello(null));
  let start, reset, topic;
  try {
    ({ start, reset } = resolveCursor(name, cursor));
    topic = getTopic(name, true);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    const { error, ...extra } = err.body;
    return fail(conn, err.status, error, extra);
  }
  const first = reset ? Buffer.from(JSON.stringify(reset) + '\n') : hello(start);
  conn.sub = subscribe(topic, 'tcp', conn.socket, (why) => drop(conn, why), start, first);
  metrics.open.tcp--; // subscribe() counted this connection again
  subs.add(conn.sub);
}

// A publish line; true when the burst rule holds this publisher (lines after it wait).
function publishLine(conn, line) {
  let frame;
  try { frame = decodePublish(UTF8.decode(line)); } catch (err) { return void fail(conn, 400, err.message.startsWith('publish') ? err.message : `publish frame is not JSON: ${err.message}`); }
  if (Buffer.byteLength(frame.data) > OPT['max-payload']) return void fail(conn, 413, `data exceeds --max-payload ${OPT['max-payload']} bytes`);
  if (closing) return false; // read after the shutdown began: not published (as WebSocket)
  let topic;
  try { topic = getTopic(conn.topic, true); } catch (err) { return void fail(conn, err.status || 400, err.message); }
  const ts = frame.ts ?? nowNs();
  if (topic.full === 0) { publish(topic, frame.data, ts); return false; }
  // A subscriber of this topic is full: stop reading this publisher until it drains.
  conn.held = [];
  conn.socket.pause();
  publishWhenWritable(topic, frame.data, ts).then(() => {
    const held = conn.held;
    conn.held = null;
    if (conn.done || conn.socket.destroyed) return;
    conn.socket.resume();
    handle(conn, held);
  });
  return true;
}

// The client's last answer: one error line, then FIN; what it still sends is dropped.
function fail(conn, status, error, extra) {
  if (conn.done) return;
  conn.done = true;
  if (conn.sub) { subs.delete(conn.sub); conn.sub.close('gone'); } // no delivery after the error line
  conn.socket.end(errorLine(status, error, extra));
  setTimeout(() => conn.socket.destroy(), LINGER_MS).unref();
}

// The hub dropped a subscriber: a slow consumer loses its socket at once (it resumes from
// its cursor); at shutdown everything written goes out, then FIN.
function drop(conn, why) {
  subs.delete(conn.sub);
  conn.done = true;
  if (why === 'slow') conn.socket.destroy();
  else conn.socket.end();
}

function listen(host, port, onListening) {
  // With --tls-cert the lines go over TLS, as the aiohttp servers' TCP listener does with --tls.
  server = OPT['tls-cert']
    ? tls.createServer({ cert: fs.readFileSync(OPT['tls-cert']), key: fs.readFileSync(OPT['tls-key']), noDelay: true }, onConnection)
    : net.createServer({ noDelay: true }, onConnection);
  server.on('error', (err) => {
    process.stderr.write(`node server.js: error: cannot listen on ${host}:${port} (--tcp-port): ${err.message}\n`);
    process.exit(1);
  });
  server.listen(port, host, () => onListening(server.address().port));
}

// Graceful stop: no new connections, publishes no longer read, every connection ended
// after what was written to it (server.js exits once openSockets() is 0 or at its deadline).
function shutdown() {
  closing = true;
  if (server) server.close();
  for (const conn of conns) {
    if (conn.sub) conn.sub.close('shutdown');
    else if (!conn.done) { conn.done = true; conn.socket.end(); }
  }
}

module.exports = { listen, openSockets: () => conns.size, port: () => (server ? server.address().port : null), shutdown, subs };
