// The options, typed: `StartOptions` is the body of mongosync's `POST /start` (the engine
// parses and validates it exactly as the REST API does); `ConnectOptions` tune the engine.

/** `cluster0` or `cluster1`, as given to `connect`. */
export type ClusterName = 'cluster0' | 'cluster1'

/** A regular expression in mongosync's filter syntax. */
export interface RegexSpec {
  pattern: string
  /** Flags among `i`, `m`, `s`, `x`. */
  options?: string
}

/** A namespace filter: exactly one of `database` and `databaseRegex`. */
export type NamespaceFilter = (
  | { database: string; databaseRegex?: never }
  | { databaseRegex: RegexSpec; database?: never }
) & {
  /** Collection names; every collection when neither this nor `collectionsRegex` is set. */
  collections?: string[]
  collectionsRegex?: RegexSpec
}

/** The body of `POST /start`. */
export interface StartOptions {
  source: ClusterName
  /** The other cluster (the default). */
  destination?: ClusterName
  includeNamespaces?: NamespaceFilter[]
  excludeNamespaces?: NamespaceFilter[]
  buildIndexes?: 'afterDataCopy' | 'beforeDataCopy' | 'excludeHashed' | 'excludeHashedAfterCopy' | 'never'
  reversible?: boolean
  enableUserWriteBlocking?: 'destinationOnly' | 'sourceAndDestination' | 'none' | boolean
  preExistingDestinationData?: boolean
}

/** Engine settings that are not part of `/start` (mongosync's flags and tuning). */
export interface ConnectOptions {
  /** This instance's ID (`mongosyncID`); `coordinator` by default. */
  id?: string
  /** Where spilled change events go. */
  spillDir?: string
  /** The largest lag (seconds) at which commit is allowed (30). */
  commitLagLimitSecs?: number
  partitionBytes?: number
  copyWorkers?: number
  copyBatchBytes?: number
  applyRoundEvents?: number
  appliers?: number
  bufferMemoryBytes?: number
  retryWindowMs?: number
  monitorIntervalMs?: number
  oplogCheckIntervalMs?: number
}

/** The `/start` body as the engine reads it: `destination` defaults to the other cluster. */
export function startBody(options: StartOptions): string {
  const body: StartOptions = { ...options }
  if (body.destination === undefined && (body.source === 'cluster0' || body.source === 'cluster1')) {
    body.destination = body.source === 'cluster0' ? 'cluster1' : 'cluster0'
  }
  return JSON.stringify(body)
}
