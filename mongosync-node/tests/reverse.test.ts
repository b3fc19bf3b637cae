// reverse: after a reversible commit, cluster1's writes flow back to cluster0.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect } from 'mongosync-node'
import { assertSame, pair, seed } from './helpers.js'

test('commit, reverse, write on the new source, commit back', async () => {
  const p = await pair()
  try {
    await seed(p.src, 'app', 'items', 300)
    const idle = await connect(p.source.uriWithCredentials, p.destination.uriWithCredentials)
    const running = await idle.start({
      source: 'cluster0',
      reversible: true,
      enableUserWriteBlocking: 'sourceAndDestination',
    })
    await running.waitCanCommit()
    const committed = await (await running.commit()).wait()

    const reversing = await committed.reverse()
    assert.equal(reversing.state, 'REVERSING')
    const back = await reversing.wait()
    assert.equal(back.state, 'RUNNING')
    assert.equal(back.progress().state, 'RUNNING')
    assert.match(back.progress().directionMapping?.Source ?? '', /cluster1/)

    await seed(p.dst, 'app', 'items', 25, 50_000)
    await back.waitCanCommit()
    const again = await (await back.commit()).wait()
    assert.equal(again.progress().state, 'COMMITTED')
    assert.equal(await assertSame(p.dst, p.src, 'app', 'items'), 325)
    await again.shutdown()
  } finally {
    await p.close()
  }
})
