// The typestate in TypeScript: one class per state, each transition returning a promise of
// the next state's class, so `tsc` rejects an illegal transition as rustc does. At run time a
// transition takes the engine's syncer from the object (which then throws, naming the state
// the sync moved to); a failed transition gives it back, so the object stays usable.

import * as native from '../native.js'
import { call, callAsync } from './errors.js'
import { SyncHandle } from './handle.js'
import { type ConnectOptions, type StartOptions, startBody } from './options.js'
import type { Metrics, Progress, SyncState } from './progress.js'

/** What every state offers: observing, and a graceful shutdown. */
abstract class SyncerBase<S extends SyncState> {
  /** The state this object stands for. */
  abstract readonly state: S
  // The engine's syncer; each transition hands it to the next state's object.
  readonly #native: native.NativeSyncer

  /** @internal */
  constructor(n: native.NativeSyncer) {
    this.#native = n
  }

  protected native(): native.NativeSyncer {
    return this.#native
  }

  /** Whether this object still owns the sync (no transition or shutdown took it). */
  get usable(): boolean {
    return call(() => this.native().usable)
  }

  /** The `/progress` document, measured now. */
  progress(): Progress {
    return call(() => this.native().progress()) as Progress
  }

  /** A handle that watches the sync through every later transition. */
  handle(): SyncHandle {
    return new SyncHandle(call(() => this.native().handle()))
  }

  /** The engine's counters. */
  metrics(): Metrics {
    return this.handle().metrics()
  }

  /** The progress now, then each change until the syncer is gone (see `SyncHandle`). */
  watchProgress(): AsyncGenerator<Progress, void, undefined> {
    return this.handle().watchProgress()
  }

  /**
   * Stops the sync gracefully: positions are persisted and `attach` continues from them.
   * The object is spent afterwards.
   */
  async shutdown(): Promise<void> {
    await callAsync(() => this.native().shutdown())
  }

  protected async move(operation: string, body?: string): Promise<native.NativeSyncer> {
    return callAsync(() => this.native().transition(operation, body))
  }
}

/** Connected to both clusters, not started. */
export class IdleSyncer extends SyncerBase<'IDLE'> {
  readonly state = 'IDLE' as const

  /**
   * IDLE → RUNNING with mongosync's `/start` body. Bad options reject with
   * `InvalidOptionsError` and leave this object usable.
   */
  async start(options: StartOptions): Promise<RunningSyncer> {
    return new RunningSyncer(await this.move('start', startBody(options)))
  }
}

/** Copying collections, then applying change events. */
export class RunningSyncer extends SyncerBase<'RUNNING'> {
  readonly state = 'RUNNING' as const

  /** Waits until `canCommit` is true (on the engine's watch channel). */
  async waitCanCommit(): Promise<Progress> {
    return this.handle().waitCanCommit()
  }

  /** RUNNING → PAUSED, once every worker stopped with its position persisted. */
  async pause(): Promise<PausedSyncer> {
    return new PausedSyncer(await this.move('pause'))
  }

  /** RUNNING → COMMITTING (returns at once); rejects with `NotReadyToCommitError` unless `canCommit`. */
  async commit(): Promise<CommittingSyncer> {
    return new CommittingSyncer(await this.move('commit'))
  }
}

/** Stopped with every position persisted. */
export class PausedSyncer extends SyncerBase<'PAUSED'> {
  readonly state = 'PAUSED' as const

  /** PAUSED → RUNNING from the persisted positions. */
  async resume(): Promise<RunningSyncer> {
    return new RunningSyncer(await this.move('resume'))
  }
}

/** Cutting over. */
export class CommittingSyncer extends SyncerBase<'COMMITTING'> {
  readonly state = 'COMMITTING' as const

  /** COMMITTING → COMMITTED: the drain to the commit point and the destination's restoration. */
  async wait(): Promise<CommittedSyncer> {
    return new CommittedSyncer(await this.move('wait'))
  }
}

/** Cut over: the destination is complete and writable. */
export class CommittedSyncer extends SyncerBase<'COMMITTED'> {
  readonly state = 'COMMITTED' as const

  /**
   * COMMITTED → REVERSING (needs `reversible: true` and
   * `enableUserWriteBlocking: 'sourceAndDestination'` at start).
   */
  async reverse(): Promise<ReversingSyncer> {
    return new ReversingSyncer(await this.move('reverse'))
  }
}

/** Swapping the direction after a commit. */
export class ReversingSyncer extends SyncerBase<'REVERSING'> {
  readonly state = 'REVERSING' as const

  /** REVERSING → RUNNING in the new direction. */
  async wait(): Promise<RunningSyncer> {
    return new RunningSyncer(await this.move('wait'))
  }
}

/** A syncer in any state: narrow it with `switch (s.state)`. */
export type AnySyncer =
  | IdleSyncer
  | RunningSyncer
  | PausedSyncer
  | CommittingSyncer
  | CommittedSyncer
  | ReversingSyncer

function wrap(n: native.NativeSyncer): AnySyncer {
  switch (n.typedState as SyncState) {
    case 'IDLE':
      return new IdleSyncer(n)
    case 'RUNNING':
      return new RunningSyncer(n)
    case 'PAUSED':
      return new PausedSyncer(n)
    case 'COMMITTING':
      return new CommittingSyncer(n)
    case 'COMMITTED':
      return new CommittedSyncer(n)
    case 'REVERSING':
      return new ReversingSyncer(n)
  }
}

/**
 * Connects to both clusters (URIs with credentials) and checks them: a new sync, IDLE.
 * Rejects with `ConnectionFailedError` (never showing a password) or `InvalidOptionsError`.
 */
export async function connect(
  cluster0: string,
  cluster1: string,
  options: ConnectOptions = {},
): Promise<IdleSyncer> {
  return new IdleSyncer(await callAsync(() => native.connect(cluster0, cluster1, options)))
}

/**
 * Connects and re-enters the sync persisted on the destination, in whatever state it is
 * (a RUNNING or COMMITTING sync continues at once); IDLE when there is none.
 */
export async function attach(
  cluster0: string,
  cluster1: string,
  options: ConnectOptions = {},
): Promise<AnySyncer> {
  return wrap(await callAsync(() => native.attach(cluster0, cluster1, options)))
}
