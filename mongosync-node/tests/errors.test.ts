// Each error class, raised by a real condition; every engine code has its class.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  ConnectionFailedError,
  connect,
  DestinationNotEmptyError,
  errorClasses,
  type IdleSyncer,
  InvalidOptionsError,
  InvalidStateError,
  MongosyncError,
  NotReadyToCommitError,
  RunningSyncer,
  type StartOptions,
} from 'mongosync-node'
import { PASSWORD, pair, seed } from './helpers.js'

// The private native module (from build/tests/), for the engine's list of codes.
const native = require('../../native.js') as { errorCodes(): string[] }

test('one class per engine error code, with code and cause', () => {
  const codes = native.errorCodes()
  assert.deepEqual(Object.keys(errorClasses).sort(), [...codes].sort())
  for (const code of codes) {
    const Class = errorClasses[code as keyof typeof errorClasses]
    const e = new Class(code as never, 'm', { cause: 'c' })
    assert.ok(e instanceof MongosyncError && e instanceof Error)
    assert.equal(e.code, code)
    assert.equal(e.name, `${code}Error`)
  }
})

function chain(e: unknown): string {
  let text = ''
  for (let c: unknown = e; c instanceof Error; c = c.cause) text += `${c.message}\n`
  return text
}

test('bad options: InvalidOptionsError naming the field; the object stays usable', async () => {
  const p = await pair()
  try {
    const idle = await connect(p.source.uriWithCredentials, p.destination.uriWithCredentials)
    await assert.rejects(idle.start({ source: 'cluster2' } as unknown as StartOptions), (e: unknown) => {
      assert.ok(e instanceof InvalidOptionsError)
      assert.equal(e.code, 'InvalidOptions')
      assert.match(e.message, /cluster0/)
      assert.ok(e.cause !== undefined)
      return true
    })
    await assert.rejects(idle.start({ source: 'cluster0', verbose: 1 } as unknown as StartOptions), /`verbose`/)
    await assert.rejects(
      idle.start({ source: 'cluster0', reversible: true, includeNamespaces: [{ database: 'a' }] }),
      InvalidOptionsError,
    )
    await assert.rejects(
      connect(p.source.uriWithCredentials, p.destination.uriWithCredentials, { copyWorkers: 0 }),
      /invalid option `copyWorkers`/,
    )
    assert.equal(idle.usable, true)
    assert.equal(idle.progress().state, 'IDLE')
    await idle.shutdown()
  } finally {
    await p.close()
  }
})

test('wrong state: the engine refuses, naming the state and the allowed ones', async () => {
  const p = await pair()
  try {
    const idle = await connect(p.source.uriWithCredentials, p.destination.uriWithCredentials)
    // tsc forbids `idle.pause()`; called anyway, the engine answers at run time.
    const pause = RunningSyncer.prototype.pause as (this: IdleSyncer) => Promise<unknown>
    await assert.rejects(pause.call(idle), (e: unknown) => {
      assert.ok(e instanceof InvalidStateError)
      assert.match(e.message, /cannot pause: the sync is IDLE; pause is allowed in RUNNING/)
      return true
    })
    assert.equal(idle.usable, true)
    await idle.shutdown()
    assert.throws(() => idle.progress(), /IdleSyncer is spent: the sync was shut down/)
  } finally {
    await p.close()
  }
})

test('unreachable cluster: ConnectionFailedError', async () => {
  const p = await pair()
  try {
    const dead = 'mongodb://127.0.0.1:1/?replicaSet=rs0&serverSelectionTimeoutMS=300&connectTimeoutMS=300'
    await assert.rejects(connect(dead, p.destination.uriWithCredentials), (e: unknown) => {
      assert.ok(e instanceof ConnectionFailedError)
      assert.equal(e.code, 'ConnectionFailed')
      return true
    })
  } finally {
    await p.close()
  }
})

test('authentication failure: ConnectionFailedError without the password', async () => {
  const p = await pair()
  try {
    const wrong = 'Wr0ng-Secret-xyz'
    const uri = p.source.uriWithCredentials.replace(/:[^:@/]+@/, `:${wrong}@`)
    assert.notEqual(uri, p.source.uriWithCredentials)
    await assert.rejects(connect(uri, p.destination.uriWithCredentials), (e: unknown) => {
      assert.ok(e instanceof ConnectionFailedError)
      const text = chain(e) + String(e) + (e as Error).stack
      assert.match(text, /AuthenticationFailed/)
      assert.ok(e.cause instanceof Error, 'the driver error is the cause')
      assert.ok(!text.includes(wrong), 'the password is not in the error')
      assert.ok(!text.includes(PASSWORD))
      return true
    })
  } finally {
    await p.close()
  }
})

test('commit before canCommit: NotReadyToCommitError, the syncer stays RUNNING', async () => {
  const p = await pair()
  try {
    await seed(p.src, 'app', 'items', 10)
    // A lag limit no lag meets: canCommit never becomes true.
    const idle = await connect(p.source.uriWithCredentials, p.destination.uriWithCredentials, {
      commitLagLimitSecs: -1,
    })
    const running = await idle.start({ source: 'cluster0' })
    await assert.rejects(running.commit(), (e: unknown) => {
      assert.ok(e instanceof NotReadyToCommitError)
      assert.match(e.message, /cannot commit yet/)
      return true
    })
    assert.equal(running.progress().state, 'RUNNING')
    assert.equal(running.progress().canCommit, false)
    await running.shutdown()
  } finally {
    await p.close()
  }
})

test('a destination with data: DestinationNotEmptyError', async () => {
  const p = await pair()
  try {
    await seed(p.dst, 'taken', 'c', 1)
    const idle = await connect(p.source.uriWithCredentials, p.destination.uriWithCredentials)
    await assert.rejects(idle.start({ source: 'cluster0' }), (e: unknown) => {
      assert.ok(e instanceof DestinationNotEmptyError)
      assert.match(e.message, /taken\.c/)
      return true
    })
    assert.equal(idle.usable, true)
    await idle.shutdown()
  } finally {
    await p.close()
  }
})
