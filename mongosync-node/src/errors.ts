// Typed errors: the native module's messages start with the engine's stable code
// (`[InvalidState] …`) followed by `Caused by: …` lines (the Rust `source()` chain); this
// module turns them into one class per code, with `code` equal to the REST API's `error`.

/** Every engine error code, as the REST API's `error` field spells it. */
export type ErrorCode =
  | 'InvalidOptions'
  | 'InvalidState'
  | 'ConnectionFailed'
  | 'DestinationNotEmpty'
  | 'HistoryLost'
  | 'NotReadyToCommit'
  | 'Unsupported'
  | 'OperationFailed'
  | 'MetadataMismatch'
  | 'DecodeFailed'
  | 'LocalIoFailed'
  | 'Cancelled'
  | 'Internal'

/** Any error of the sync engine. `cause` is the engine's cause chain (or the native error). */
export class MongosyncError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** An option is not allowed; nothing was written. */
export class InvalidOptionsError extends MongosyncError {
  declare readonly code: 'InvalidOptions'
}
/** The operation is not allowed in the sync's state (or on a spent object). */
export class InvalidStateError extends MongosyncError {
  declare readonly code: 'InvalidState'
}
/** A cluster could not be reached, authenticated to, or used. */
export class ConnectionFailedError extends MongosyncError {
  declare readonly code: 'ConnectionFailed'
}
/** The destination holds data the options do not allow. */
export class DestinationNotEmptyError extends MongosyncError {
  declare readonly code: 'DestinationNotEmpty'
}
/** The source's history no longer reaches back to the sync's resume point. */
export class HistoryLostError extends MongosyncError {
  declare readonly code: 'HistoryLost'
}
/** A commit was asked for while `canCommit` is false. */
export class NotReadyToCommitError extends MongosyncError {
  declare readonly code: 'NotReadyToCommit'
}
/** The source holds something the sync cannot migrate. */
export class UnsupportedError extends MongosyncError {
  declare readonly code: 'Unsupported'
}
/** A step of the sync failed on a cluster (after its retries). */
export class OperationFailedError extends MongosyncError {
  declare readonly code: 'OperationFailed'
}
/** The persisted state of a sync cannot be used. */
export class MetadataMismatchError extends MongosyncError {
  declare readonly code: 'MetadataMismatch'
}
/** A document or event could not be decoded. */
export class DecodeFailedError extends MongosyncError {
  declare readonly code: 'DecodeFailed'
}
/** A local file could not be used. */
export class LocalIoFailedError extends MongosyncError {
  declare readonly code: 'LocalIoFailed'
}
/** The operation was cancelled: the syncer was shut down or dropped. */
export class CancelledError extends MongosyncError {
  declare readonly code: 'Cancelled'
}
/** A bug: a task panicked or an invariant did not hold. */
export class InternalError extends MongosyncError {
  declare readonly code: 'Internal'
}

type ErrorClass = new (code: ErrorCode, message: string, options?: { cause?: unknown }) => MongosyncError

/** The class of each code. */
export const errorClasses: { readonly [C in ErrorCode]: ErrorClass } = {
  InvalidOptions: InvalidOptionsError,
  InvalidState: InvalidStateError,
  ConnectionFailed: ConnectionFailedError,
  DestinationNotEmpty: DestinationNotEmptyError,
  HistoryLost: HistoryLostError,
  NotReadyToCommit: NotReadyToCommitError,
  Unsupported: UnsupportedError,
  OperationFailed: OperationFailedError,
  MetadataMismatch: MetadataMismatchError,
  DecodeFailed: DecodeFailedError,
  LocalIoFailed: LocalIoFailedError,
  Cancelled: CancelledError,
  Internal: InternalError,
}

const PREFIX = /^\[([A-Za-z]+)\] /
const CAUSED_BY = '\nCaused by: '

/** The typed error for a native error; other values are returned unchanged. */
export function typed(e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof MongosyncError) return e
  const m = PREFIX.exec(e.message)
  if (!m || !(m[1] in errorClasses)) return e
  const [message, ...causes] = e.message.slice(m[0].length).split(CAUSED_BY)
  // The cause chain, innermost last; the native error itself when there is none.
  let cause: unknown = e
  for (const text of causes.reverse()) {
    cause = cause === e ? new Error(text) : new Error(text, { cause })
  }
  const code = m[1] as ErrorCode
  return new errorClasses[code](code, message!, { cause })
}

/** Runs a native call, rethrowing its errors typed. */
export function call<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw typed(e)
  }
}

/** Awaits a native promise, rethrowing its errors typed. */
export async function callAsync<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p()
  } catch (e) {
    throw typed(e)
  }
}
