// `SyncHandle`: watches a sync through all its transitions without owning it. Progress comes
// from the engine's watch channel: `watchProgress()` wakes on each published change, no timer.

import type * as native from '../native.js'
import { call, callAsync } from './errors.js'
import type { Metrics, Progress, SyncState } from './progress.js'

/** Watches a sync; holding one never keeps a sync alive. */
export class SyncHandle {
  readonly #native: native.NativeHandle

  /** @internal */
  constructor(handle: native.NativeHandle) {
    this.#native = handle
  }

  /** The `/progress` document, measured now (the last one published once the syncer is gone). */
  progress(): Progress {
    return call(() => this.#native.progress()) as Progress
  }

  /** The state now. */
  get state(): SyncState {
    return call(() => this.#native.state()) as SyncState
  }

  /** The engine's counters. */
  metrics(): Metrics {
    return call(() => this.#native.metrics()) as Metrics
  }

  /** Whether the syncer still exists (not dropped, not shut down). */
  get isAlive(): boolean {
    return call(() => this.#native.isAlive())
  }

  /**
   * The progress now, then each change (state, copied bytes, applied events, lag…), until
   * the syncer is gone. A slow reader skips to the latest document.
   */
  async *watchProgress(): AsyncGenerator<Progress, void, undefined> {
    const stream = call(() => this.#native.changes())
    for (;;) {
      const next = await callAsync(() => stream.next())
      if (next === null) return
      yield next as Progress
    }
  }

  /** Waits until `canCommit` is true. Rejects with the error that stopped the sync, if any. */
  async waitCanCommit(): Promise<Progress> {
    return (await callAsync(() => this.#native.waitCanCommit())) as Progress
  }

  /** Waits until the sync is in `state`. */
  async waitState(state: SyncState): Promise<Progress> {
    return (await callAsync(() => this.#native.waitState(state))) as Progress
  }
}
