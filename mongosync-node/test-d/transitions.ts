// Type tests (compiled with `tsc --noEmit`, never run): each illegal transition is an error
// that must stay one (an unused `@ts-expect-error` fails the compilation); legal ones pin
// their types.
import {
  attach,
  type AnySyncer,
  type CommittedSyncer,
  type CommittingSyncer,
  connect,
  type IdleSyncer,
  InvalidStateError,
  MemoryCluster,
  type MongosyncError,
  type PausedSyncer,
  type Progress,
  type ReversingSyncer,
  type RunningSyncer,
  type SyncState,
} from 'mongosync-node'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
function pin<T extends true>(): T | void {}

async function legal(): Promise<void> {
  const idle = await connect('a', 'b', { commitLagLimitSecs: 10 })
  pin<Equal<typeof idle, IdleSyncer>>()
  const running = await idle.start({ source: 'cluster0', includeNamespaces: [{ database: 'shop', collections: ['orders'] }] })
  pin<Equal<typeof running, RunningSyncer>>()
  pin<Equal<typeof running.state, 'RUNNING'>>()
  const paused = await running.pause()
  pin<Equal<typeof paused, PausedSyncer>>()
  const resumed = await paused.resume()
  pin<Equal<typeof resumed, RunningSyncer>>()
  const committing = await resumed.commit()
  pin<Equal<typeof committing, CommittingSyncer>>()
  const committed = await committing.wait()
  pin<Equal<typeof committed, CommittedSyncer>>()
  const reversing = await committed.reverse()
  pin<Equal<typeof reversing, ReversingSyncer>>()
  const back = await reversing.wait()
  pin<Equal<typeof back, RunningSyncer>>()
  const p = back.progress()
  pin<Equal<typeof p, Progress>>()
  pin<Equal<typeof p.state, SyncState>>()
  for await (const q of back.watchProgress()) pin<Equal<typeof q, Progress>>()

  const any = await attach('a', 'b')
  pin<Equal<typeof any, AnySyncer>>()
  switch (any.state) {
    case 'RUNNING':
      pin<Equal<typeof any, RunningSyncer>>()
      await any.commit()
      break
    case 'PAUSED':
      await any.resume()
      break
    case 'COMMITTING':
    case 'REVERSING':
      await any.wait()
      break
    default:
      // @ts-expect-error: only RUNNING commits, and the union is not narrowed here
      await any.commit()
  }

  try {
    await idle.start({ source: 'cluster1', enableUserWriteBlocking: 'none', buildIndexes: 'never' })
  } catch (e) {
    if (e instanceof InvalidStateError) pin<Equal<typeof e.code, 'InvalidState'>>()
  }
  const err = null as unknown as MongosyncError
  pin<Equal<typeof err.code, import('mongosync-node').ErrorCode>>()

  await using cluster = await MemoryCluster.start({ auth: { user: 'u', password: 'p' } })
  pin<Equal<ReturnType<typeof cluster.getUri>, string>>()
}

async function illegal(
  idle: IdleSyncer,
  running: RunningSyncer,
  paused: PausedSyncer,
  committing: CommittingSyncer,
  committed: CommittedSyncer,
  reversing: ReversingSyncer,
): Promise<void> {
  // @ts-expect-error: an IDLE sync cannot commit
  await idle.commit()
  // @ts-expect-error: an IDLE sync cannot pause
  await idle.pause()
  // @ts-expect-error: a RUNNING sync cannot start again
  await running.start({ source: 'cluster0' })
  // @ts-expect-error: a RUNNING sync does not resume
  await running.resume()
  // @ts-expect-error: a RUNNING sync does not reverse
  await running.reverse()
  // @ts-expect-error: a PAUSED sync cannot commit
  await paused.commit()
  // @ts-expect-error: a PAUSED sync cannot pause
  await paused.pause()
  // @ts-expect-error: a COMMITTING sync cannot pause
  await committing.pause()
  // @ts-expect-error: a COMMITTING sync cannot reverse yet
  await committing.reverse()
  // @ts-expect-error: a COMMITTED sync cannot pause
  await committed.pause()
  // @ts-expect-error: a COMMITTED sync cannot commit again
  await committed.commit()
  // @ts-expect-error: a REVERSING sync cannot reverse again
  await reversing.reverse()
  // @ts-expect-error: the classes are not interchangeable
  const r: RunningSyncer = paused
  // @ts-expect-error: nor are the ones with the same methods
  const c: CommittingSyncer = reversing
  // @ts-expect-error: a transition gives a promise of the next class, not the class
  const p: PausedSyncer = running.pause()
  // @ts-expect-error: `source` is required by `/start`
  await idle.start({ includeNamespaces: [] })
  // @ts-expect-error: `source` is cluster0 or cluster1
  await idle.start({ source: 'cluster2' })
  // @ts-expect-error: a namespace filter names a database
  await idle.start({ source: 'cluster0', includeNamespaces: [{ collections: ['a'] }] })
  void [r, c, p]
}

void legal
void illegal
