// Starts the mongosync-testkit command (path from $MONGOSYNC_TESTKIT_BIN, else
// <repo>/target/debug/mongosync-testkit) on a free port and returns a connected MongoClient.
// Set $MONGODB_URI instead to run the same tests against a real MongoDB 8.0 replica set.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const URI_LINE = /^mongodb:\/\/127\.0\.0\.1:(\d+)\/\?replicaSet=rs0$/;
const START_TIMEOUT_MS = 30_000;

function readFirstLine(child) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no URI line within ${START_TIMEOUT_MS} ms (got ${JSON.stringify(buf)})`));
    }, START_TIMEOUT_MS);
    const onData = (chunk) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        cleanup();
        resolve(buf.slice(0, nl));
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`mongosync-testkit exited (code ${code}, signal ${signal}) before its URI`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Starts a server; resolves to { uri, client, stop }. */
export async function startServer() {
  let child = null;
  let uri = process.env.MONGODB_URI;
  if (!uri) {
    const bin =
      process.env.MONGOSYNC_TESTKIT_BIN ?? path.join(REPO, 'target', 'debug', 'mongosync-testkit');
    if (!existsSync(bin)) {
      throw new Error(`mongosync-testkit binary not found at ${bin}; build it first`);
    }
    child = spawn(bin, ['--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    uri = await readFirstLine(child);
    if (!URI_LINE.test(uri)) {
      child.kill('SIGTERM');
      throw new Error(`unexpected first line ${JSON.stringify(uri)}`);
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    child.stdout.resume();
  }
  const terminate = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const client = new MongoClient(uri, {
    serverSelectionTimeoutMS: 10_000,
    connectTimeoutMS: 10_000,
    socketTimeoutMS: 60_000,
  });
  try {
    await client.connect();
  } catch (err) {
    await client.close().catch(() => {});
    await terminate();
    throw err;
  }
  const stop = async () => {
    await client.close();
    await terminate();
  };
  return { uri, client, stop };
}

/** A fresh database named after the test (dropped first). */
export async function freshDb(client, name) {
  const db = client.db(`node_${name.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 50)}`);
  await db.dropDatabase();
  return db;
}
