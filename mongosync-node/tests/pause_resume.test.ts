// pause and resume: writes made while PAUSED arrive after resume.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect } from 'mongosync-node'
import { assertSame, type Doc, pair, seed } from './helpers.js'

test('pause, write while paused, resume, commit', async () => {
  const p = await pair()
  try {
    await seed(p.src, 'app', 'items', 500)
    const idle = await connect(p.source.uriWithCredentials, p.destination.uriWithCredentials)
    const running = await idle.start({ source: 'cluster0' })
    await running.waitCanCommit()

    const paused = await running.pause()
    assert.equal(paused.state, 'PAUSED')
    assert.equal(paused.progress().state, 'PAUSED')
    assert.equal(paused.handle().state, 'PAUSED')
    await seed(p.src, 'app', 'items', 50, 10_000)
    await p.src.db('app').collection<Doc>('items').deleteMany({ _id: { $lt: 20 } })

    const resumed = await paused.resume()
    assert.equal(resumed.progress().state, 'RUNNING')
    await resumed.waitCanCommit()
    const committed = await (await resumed.commit()).wait()
    assert.equal(committed.progress().state, 'COMMITTED')
    assert.equal(await assertSame(p.src, p.dst, 'app', 'items'), 530)
    await committed.shutdown()
  } finally {
    await p.close()
  }
})
