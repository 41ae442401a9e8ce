// The Node reference's listeners: plain HTTP/1.1, HTTPS, HTTPS with HTTP/2 (ALPN h2 and
// http/1.1 on one port) and cleartext HTTP/2 with prior knowledge (h2c, its own port), plus
// what HTTP/2 needs besides the routes: RFC 8441 WebSockets on an Http2Stream, and the
// sessions to close at shutdown.
//
// Why here and not in server.js: the contract's routes are the same over every listener
// (server.js, through node's compatibility API: an HTTP/2 request arrives as req/res like an
// HTTP/1.1 one); only the framing of HTTP differs, and that framing is this file's.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const http2 = require('node:http2');
const { WebSocket } = require('ws');
const OPT = require('./options');

// Streams and held polls are long by design: no request timeout; a poller's connection idles
// between polls for at most this long.
const KEEPALIVE_MS = 65000;
// RFC 8441: the server says it accepts extended CONNECT (:protocol websocket). No server push.
// A session may hold many subscribers' queued frames (a page's streams share it).
const H2_OPTIONS = { settings: { enableConnectProtocol: true, enablePush: false }, maxSessionMemory: 64 };

// Every raw connection (to end the process once they are gone) and HTTP/2 session (GOAWAY at
// shutdown, so clients stop opening streams on it).
const sockets = new Set();
const sessions = new Set();

function track(server) {
  server.on('connection', (socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)); });
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {}); // a broken peer ends its own session, never the process
  });
  server.on('error', (err) => {
    const port = server === h2cServer ? OPT['h2c-port'] : OPT.port;
    process.stderr.write(`node server.js: error: cannot listen on ${OPT.host}:${port}: ${err.message}\n`);
    process.exit(1);
  });
  return server;
}

function tlsOptions() {
  try {
    return { cert: fs.readFileSync(OPT['tls-cert']), key: fs.readFileSync(OPT['tls-key']) };
  } catch (err) {
    process.stderr.write(`node server.js: error: cannot read --tls-cert / --tls-key: ${err.message}\n`);
    process.exit(2);
  }
}

let h2cServer = null;

// The main listener (--port) and, with --h2c-port, the cleartext HTTP/2 one.
// `handlers`: {request(req, res), upgrade(req, socket, head), connect(req, res | socket, head)}.
function createListeners(handlers) {
  let main;
  const tls = OPT['tls-cert'] !== '';
  if (tls && OPT.http2) {
    // ALPN offers h2 and http/1.1: browsers and curl pick h2, HTTP/1.1-only clients still work
    // (their WebSocket is the RFC 6455 upgrade, HTTP/2 clients' the RFC 8441 CONNECT).
    main = http2.createSecureServer({ ...tlsOptions(), ...H2_OPTIONS, allowHTTP1: true, noDelay: true });
  } else if (tls) {
    main = https.createServer({ ...tlsOptions(), noDelay: true, keepAlive: true });
  } else {
    main = http.createServer({ noDelay: true, keepAlive: true });
  }
  main.keepAliveTimeout = KEEPALIVE_MS; // HTTP/1.1 connections (also those of allowHTTP1)
  main.headersTimeout = KEEPALIVE_MS + 1000;
  main.requestTimeout = 0;
  main.on('request', handlers.request);
  main.on('upgrade', handlers.upgrade);
  if (tls && OPT.http2) main.on('connect', handlers.connect);
  const servers = [track(main)];
  if (OPT['h2c-port'] !== null) {
    // Cleartext HTTP/2 speaks only HTTP/2 (node cannot offer HTTP/1.1 on the same cleartext
    // port): a client comes with prior knowledge (RFC 9113 3.3), e.g. curl --http2-prior-knowledge.
    h2cServer = http2.createServer({ ...H2_OPTIONS, noDelay: true });
    h2cServer.on('request', handlers.request);
    h2cServer.on('connect', handlers.connect);
    servers.push(track(h2cServer));
  }
  return servers;
}

// Listen on every listener, then print the one start-up line:
// `duplexbench server listening on http(s)://H:P (transports: ...[; http2: h2 via ALPN][; h2c http://H:Q])`.
function listenAll(servers, transports, also = '') {
  const host = OPT.host.includes(':') ? `[${OPT.host}]` : OPT.host;
  const ports = [OPT.port, OPT['h2c-port']];
  let pending = servers.length;
  servers.forEach((server, i) => server.listen(ports[i], OPT.host, () => {
    if (--pending) return;
    const scheme = OPT['tls-cert'] ? 'https' : 'http';
    const notes = [`transports: ${transports.join(', ')}`];
    if (OPT['tls-cert'] && OPT.http2) notes.push('http2: h2 via ALPN');
    if (servers[1]) notes.push(`h2c http://${host}:${servers[1].address().port}`);
    process.stdout.write(`duplexbench server listening on ${scheme}://${host}:${servers[0].address().port}${also} (${notes.join('; ')})\n`);
  }));
}

// The scheme and authority a request was made to (the Origin policy's "same origin").
function requestOrigin(req) {
  const h2 = req.httpVersionMajor === 2;
  const socket = h2 ? req.stream.session.socket : req.socket;
  const scheme = socket && socket.encrypted ? 'https' : 'http';
  const host = (h2 ? req.headers[':authority'] || req.headers.host : req.headers.host) || '';
  return { scheme, host: host.toLowerCase() };
}

// RFC 8441 4-5: answer an extended CONNECT with 200 and speak WebSocket on the stream. `ws`
// drives any Duplex (setSocket); frames, masking and the close handshake are RFC 6455's.
function acceptWebSocket(stream, headers, maxPayload) {
  stream.respond({ ':status': 200, ...headers });
  const ws = new WebSocket(null, undefined, { autoPong: true });
  ws.setSocket(stream, Buffer.alloc(0), { maxPayload, allowSynchronousEvents: true, skipUTF8Validation: false });
  return ws;
}

// Shutdown: GOAWAY on every HTTP/2 session (no new streams; open ones finish).
function closeSessions() {
  for (const session of sessions) session.close();
}

module.exports = { acceptWebSocket, closeSessions, createListeners, listenAll, requestOrigin, sockets };
