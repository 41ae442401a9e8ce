// Command-line options of the Node reference, the same names and checks as `python -m servers`.
// Parsed once, when first required: server.js and hub.js share the one result.
'use strict';

// ---------------------------------------------------------------- options

const TRANSPORTS = ['longpoll', 'stream', 'websocket', 'tcp'];
const DEFAULTS = {
  transport: 'all', host: '127.0.0.1', port: 8080, 'tcp-port': null, retention: 10000,
  'retention-bytes': 64 * 1024 * 1024, 'max-topics': 100000, 'queue-limit': 1000,
  'max-payload': 1024 * 1024, heartbeat: 15, 'ping-interval': 20, 'ping-timeout': 20,
  'poll-timeout-cap': 120, 'max-batch': 10000, 'shutdown-timeout': 5, 'slow-grace': 2,
  // TLS (PEM files, as `python -m servers --tls-cert/--tls-key`), HTTP/2 over it (ALPN h2 and
  // http/1.1 on --port), and a cleartext HTTP/2 listener (h2c, prior knowledge) on its own port.
  'tls-cert': '', 'tls-key': '', 'h2c-port': null, http2: false,
};
const FLAGS = ['http2']; // options without a value
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
    if (FLAGS.includes(name)) {
      if (value !== undefined) usageExit(`--${name} takes no value`);
      opts[name] = true;
      continue;
    }
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
  if (opts['tcp-port'] !== null) { // given: the plain-TCP listener runs, beside any --transport
    const n = Number(opts['tcp-port']);
    if (!/^\d+$/.test(String(opts['tcp-port'])) || n > 65535) usageExit(`--tcp-port ${opts['tcp-port']}: expected 0-65535 (0 picks a free port)`);
    opts['tcp-port'] = n;
  }
  for (const name of SECONDS) {
    const n = Number(opts[name]);
    if (!Number.isFinite(n) || n <= 0) usageExit(`--${name} ${opts[name]}: expected a positive number of seconds`);
    opts[name] = n;
  }
  if (opts['h2c-port'] !== null) {
    const n = Number(opts['h2c-port']);
    if (!Number.isInteger(n) || n < 0 || n > 65535) usageExit(`--h2c-port ${opts['h2c-port']}: expected an integer in 0..65535 (0 = a free port)`);
    opts['h2c-port'] = n;
  }
  if (Boolean(opts['tls-cert']) !== Boolean(opts['tls-key'])) usageExit('--tls-cert and --tls-key go together (PEM certificate chain and its key)');
  // Browsers speak HTTP/2 only over TLS; cleartext HTTP/2 is --h2c-port (node cannot offer
  // HTTP/1.1 and h2c on one cleartext port).
  if (opts.http2 && !opts['tls-cert']) usageExit('--http2 needs --tls-cert/--tls-key (HTTP/2 via ALPN); for cleartext HTTP/2 give --h2c-port');
  if (opts.transport !== 'all' && !TRANSPORTS.includes(opts.transport)) usageExit(`--transport ${opts.transport}: expected one of ${TRANSPORTS.join(', ')}, all`);
  // The delay and pad regressions of the regression gate are a Python-server feature:
  // refusing them is better than silently measuring an un-injected server.
  for (const env of ['DUPLEXBENCH_INJECT_DELAY_MS', 'DUPLEXBENCH_INJECT_PAD_BYTES']) {
    const v = (process.env[env] || '').trim();
    if (v && Number(v) !== 0) usageExit(`${env}=${v}: injected regressions are not supported by the Node reference`);
  }
  // CPU per delivered message (a busy-wait, hub.js burn), as python -m servers does.
  const cpu = (process.env.DUPLEXBENCH_INJECT_CPU_US || '').trim() || '0';
  if (!/^\d{1,7}$/.test(cpu) || Number(cpu) > 1000000) usageExit(`DUPLEXBENCH_INJECT_CPU_US=${cpu}: expected an integer 0-1000000 (microseconds)`);
  opts['inject-cpu-us'] = Number(cpu);
  return opts;
}

module.exports = parseOptions(process.argv.slice(2));
module.exports.TRANSPORTS = TRANSPORTS;
