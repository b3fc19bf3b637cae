// attach: a child process starts a sync and exits without stopping it (its objects are
// simply gone); this process re-enters the persisted sync and finishes it.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'
import { attach, type AnySyncer, type RunningSyncer } from 'mongosync-node'
import { assertSame, pair, seed } from './helpers.js'

const CHILD = `
const { connect } = require('mongosync-node')
;(async () => {
  const idle = await connect(process.env.URI0, process.env.URI1)
  const running = await idle.start({ source: 'cluster0' })
  await running.waitCanCommit()
  console.log(running.progress().state)
  process.exit(0) // the syncer is dropped with the process
})().catch((e) => { console.error(e); process.exit(1) })
`

function running(s: AnySyncer): RunningSyncer {
  switch (s.state) {
    case 'RUNNING':
      return s
    default:
      throw new Error(`attach returned ${s.state}`)
  }
}

test('attach after the process that started the sync dropped its object', async () => {
  const p = await pair()
  try {
    await seed(p.src, 'app', 'items', 400)
    const out = execFileSync(process.execPath, ['-e', CHILD], {
      env: { ...process.env, URI0: p.source.uriWithCredentials, URI1: p.destination.uriWithCredentials },
      encoding: 'utf8',
    })
    assert.equal(out.trim(), 'RUNNING')
    await seed(p.src, 'app', 'items', 40, 9_000)

    const s = await attach(p.source.uriWithCredentials, p.destination.uriWithCredentials)
    assert.equal(s.state, 'RUNNING')
    const r = running(s)
    await r.waitCanCommit()
    const committed = await (await r.commit()).wait()
    assert.equal(await assertSame(p.src, p.dst, 'app', 'items'), 440)

    // Attaching to a committed sync gives a CommittedSyncer.
    await committed.shutdown()
    const again = await attach(p.source.uriWithCredentials, p.destination.uriWithCredentials)
    assert.equal(again.state, 'COMMITTED')
    await again.shutdown()
  } finally {
    await p.close()
  }
})
