// The documents the engine reports, typed: `/progress` (mongosync's own field names) and the
// metrics counters.

/** The states of a sync, as mongosync names them. */
export type SyncState = 'IDLE' | 'RUNNING' | 'PAUSED' | 'COMMITTING' | 'COMMITTED' | 'REVERSING'

/** mongosync's `/progress` document. Figures the engine cannot measure are `null`. */
export interface Progress {
  state: SyncState
  canCommit: boolean
  canWrite: boolean | null
  info: string | null
  ceaStage?: string
  lagTimeSeconds: number | null
  lag: { overallLagSeconds: number; crudLagSeconds: number | null; ddlLagSeconds: number | null } | null
  totalEventsApplied: number | null
  collectionCopy: { estimatedTotalBytes: number; estimatedCopiedBytes: number } | null
  estimatedOplogTimeRemaining?: string
  directionMapping: { Source: string; Destination: string } | null
  source: { pingLatencyMs?: number } | null
  destination: { pingLatencyMs?: number } | null
  mongosyncID: string | null
  coordinatorID: string | null
  warnings?: string[]
}

/** Counts and durations of batches (a histogram of seconds per batch). */
export interface Batches {
  count: number
  items: number
  seconds: number
  /** `[upper bound in seconds, batches]` pairs. */
  buckets: Array<[number, number]>
}

/** The engine's counters. */
export interface Metrics {
  state: SyncState
  documentsCopied: number
  bytesCopied: number
  bytesToCopy: number
  namespaces: Record<string, { documents: number; bytes: number }>
  eventsRead: number
  eventsApplied: number
  ddlApplied: number
  refetches: number
  retries: Record<string, number>
  copyBatches: Batches
  applyBatches: Batches
  lagSeconds: number | null
  oplogHeadroomSeconds: number | null
}
