// `MemoryCluster`: the testkit's in-memory MongoDB 8.0 replica set, running inside this Node
// process (no `mongod` download). The official `mongodb` driver connects to it unchanged.

import * as native from '../native.js'
import { callAsync } from './errors.js'

// Node 20 has `Symbol.asyncDispose`; older runtimes get the well-known symbol TS uses.
;(Symbol as { asyncDispose?: symbol }).asyncDispose ??= Symbol.for('Symbol.asyncDispose')

/** How to start a `MemoryCluster`. */
export interface MemoryClusterOptions {
  /** Turns authentication on with this root user (SCRAM-SHA-256 and SHA-1, in `admin`). */
  auth?: { user: string; password: string }
  /** The replica set's name (`rs0`). */
  replicaSet?: string
  /** The port; a free one by default. */
  port?: number
}

/** A single-member replica set in memory. `await using` stops it at the end of the scope. */
export class MemoryCluster implements AsyncDisposable {
  readonly #native: native.NativeMemoryCluster
  /** `mongodb://127.0.0.1:PORT/?replicaSet=rs0`, without credentials. */
  readonly uri: string
  /** The URI with the `auth` user's credentials (`authSource=admin`); `uri` without auth. */
  readonly uriWithCredentials: string
  /** The user it was started with, if any. */
  readonly auth: { readonly user: string; readonly password: string } | undefined

  private constructor(n: native.NativeMemoryCluster, uriWithCredentials: string, auth: MemoryClusterOptions['auth']) {
    this.#native = n
    this.uri = n.uri
    this.uriWithCredentials = uriWithCredentials
    this.auth = auth ? { ...auth } : undefined
  }

  /** Starts a cluster on a free port. */
  static async start(options: MemoryClusterOptions = {}): Promise<MemoryCluster> {
    const n = await callAsync(() =>
      native.NativeMemoryCluster.start({
        replicaSet: options.replicaSet,
        port: options.port,
        user: options.auth?.user,
        password: options.auth?.password,
      }),
    )
    const withCredentials = options.auth
      ? await callAsync(() => n.uriWithCredentials(options.auth!.user, options.auth!.password))
      : n.uri
    return new MemoryCluster(n, withCredentials, options.auth)
  }

  /** `mongodb-memory-server`'s name for `start`. */
  static create(options: MemoryClusterOptions = {}): Promise<MemoryCluster> {
    return MemoryCluster.start(options)
  }

  /** A URI that works as is (with credentials when auth is on), as `mongodb-memory-server`'s `getUri()`. */
  getUri(): string {
    return this.uriWithCredentials
  }

  /** Stops the cluster and closes its connections; idempotent. */
  async stop(): Promise<void> {
    await callAsync(() => this.#native.stop())
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }
}
