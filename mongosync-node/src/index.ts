// mongosync-node: Cluster-to-Cluster Sync from Node.js, and an in-memory MongoDB for tests.

export {
  CancelledError,
  ConnectionFailedError,
  DecodeFailedError,
  DestinationNotEmptyError,
  type ErrorCode,
  errorClasses,
  HistoryLostError,
  InternalError,
  InvalidOptionsError,
  InvalidStateError,
  LocalIoFailedError,
  MetadataMismatchError,
  MongosyncError,
  NotReadyToCommitError,
  OperationFailedError,
  UnsupportedError,
} from './errors.js'
export { SyncHandle } from './handle.js'
export type { ClusterName, ConnectOptions, NamespaceFilter, RegexSpec, StartOptions } from './options.js'
export type { Batches, Metrics, Progress, SyncState } from './progress.js'
export {
  attach,
  type AnySyncer,
  CommittedSyncer,
  CommittingSyncer,
  connect,
  IdleSyncer,
  PausedSyncer,
  ReversingSyncer,
  RunningSyncer,
} from './syncer.js'
export { MemoryCluster, type MemoryClusterOptions } from './testkit.js'
