// A full sync driven from Node: the driver writes to the source throughout the copy and the
// change application; watchProgress follows the states; commit; the destination is compared
// document by document.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect, InvalidStateError, type Progress } from 'mongosync-node'
import { assertSame, pair, seed, writer } from './helpers.js'

test('full sync with writes throughout, watched, committed and verified', async () => {
  const p = await pair()
  try {
    await seed(p.src, 'shop', 'orders', 2000)
    await seed(p.src, 'other', 'skipped', 10)
    const w = writer(p.src, 'shop', 'orders', 100_000)

    const idle = await connect(p.source.uriWithCredentials, p.destination.uriWithCredentials)
    assert.equal(idle.state, 'IDLE')
    assert.equal(idle.progress().state, 'IDLE')
    const running = await idle.start({ source: 'cluster0', includeNamespaces: [{ database: 'shop' }] })
    assert.equal(running.state, 'RUNNING')

    // Spent: the IDLE object names the state the sync moved to.
    assert.throws(() => idle.progress(), (e: unknown) => {
      assert.ok(e instanceof InvalidStateError)
      assert.equal(e.code, 'InvalidState')
      assert.match(e.message, /IdleSyncer is spent: `start` moved the sync to RUNNING/)
      return true
    })
    await assert.rejects(idle.start({ source: 'cluster0' }), InvalidStateError)

    // Watch until canCommit while the writer keeps writing during RUNNING.
    const seen: Progress[] = []
    const writesAtStart = w.writes
    for await (const progress of running.watchProgress()) {
      seen.push(progress)
      if (progress.canCommit && w.writes > writesAtStart + 30) break
    }
    assert.ok(seen.every((s) => s.state === 'RUNNING'), 'the progress stayed RUNNING')
    assert.ok(seen.at(-1)!.canCommit)
    assert.ok(w.writes > writesAtStart, 'the source was written while the sync was RUNNING')
    await w.stop()

    await running.waitCanCommit()
    const committing = await running.commit()
    assert.equal(committing.state, 'COMMITTING')
    assert.throws(() => running.progress(), /RunningSyncer is spent: `commit` moved the sync to COMMITT(ING|ED)/)
    const committed = await committing.wait()
    assert.equal(committed.state, 'COMMITTED')
    const progress = committed.progress()
    assert.equal(progress.state, 'COMMITTED')
    assert.equal(progress.canWrite, true)

    const metrics = committed.metrics()
    assert.ok(metrics.documentsCopied > 0)
    assert.ok(metrics.eventsApplied > 0, 'change events were applied')

    const n = await assertSame(p.src, p.dst, 'shop', 'orders')
    assert.ok(n > 2000)
    assert.deepEqual(await p.dst.db('other').listCollections().toArray(), [], 'the filter left `other` out')
    await committed.shutdown()
  } finally {
    await p.close()
  }
})
