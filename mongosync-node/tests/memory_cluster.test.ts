// MemoryCluster: an in-memory replica set for Node tests, with auth and `await using`.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MongoClient } from 'mongodb'
import { MemoryCluster } from 'mongosync-node'

test('await using: auth on, the driver works, the cluster stops at the end of the scope', async () => {
  let uri: string
  {
    await using cluster = await MemoryCluster.start({ auth: { user: 'tester', password: 'p@ss:w/rd' } })
    uri = cluster.getUri()
    assert.equal(uri, cluster.uriWithCredentials)
    assert.match(cluster.uri, /^mongodb:\/\/127\.0\.0\.1:\d+\/\?replicaSet=rs0$/)
    assert.ok(!cluster.uri.includes('tester'))

    const client = await MongoClient.connect(uri)
    try {
      await client.db('t').collection('c').insertOne({ _id: 1 as never, a: 'b' })
      assert.deepEqual(await client.db('t').collection('c').findOne(), { _id: 1, a: 'b' })
      const hello = await client.db('admin').command({ hello: 1 })
      assert.equal(hello.setName, 'rs0')
    } finally {
      await client.close()
    }

    // Auth is enforced: an unauthenticated client cannot read.
    const anonymous = await MongoClient.connect(cluster.uri)
    try {
      await assert.rejects(anonymous.db('t').collection('c').findOne(), /auth|Unauthorized|requires/i)
    } finally {
      await anonymous.close()
    }
    // A wrong password is refused.
    const wrong = new MongoClient(uri.replace('p%40ss', 'nope'), { serverSelectionTimeoutMS: 2000 })
    await assert.rejects(wrong.connect(), /auth/i)
    await wrong.close()
  }
  // Disposed: nothing listens any more.
  const late = new MongoClient(uri, { serverSelectionTimeoutMS: 300 })
  await assert.rejects(late.connect())
  await late.close()
})

test('options are checked', async () => {
  await assert.rejects(
    MemoryCluster.start({ auth: { user: 'u' } as { user: string; password: string } }),
    /`user` and `password` go together/,
  )
  const c = await MemoryCluster.create()
  assert.equal(c.getUri(), c.uri)
  await c.stop()
  await c.stop()
})
