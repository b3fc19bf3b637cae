// Syncs one database between two in-memory clusters (with authentication), watching the
// progress, then commits and checks the destination. Run: node examples/sync.mjs
import { MongoClient } from 'mongodb'
import { connect, MemoryCluster } from 'mongosync-node'

const auth = { user: 'admin', password: 'example-Pa55' }
const source = await MemoryCluster.start({ auth })
const destination = await MemoryCluster.start({ auth })
const client = await MongoClient.connect(source.getUri())
try {
  await client.db('shop').collection('orders').insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, total: i * 10 })))

  const idle = await connect(source.getUri(), destination.getUri())
  const running = await idle.start({ source: 'cluster0', includeNamespaces: [{ database: 'shop' }] })
  for await (const p of running.watchProgress()) {
    console.log(`${p.state} canCommit=${p.canCommit} copied=${p.collectionCopy?.estimatedCopiedBytes ?? 0} bytes`)
    if (p.canCommit) break
  }
  const committed = await (await running.commit()).wait()
  console.log(committed.progress().state)

  const dst = await MongoClient.connect(destination.getUri())
  const n = await dst.db('shop').collection('orders').countDocuments()
  await dst.close()
  console.log(`${n} documents on both sides`)
  await committed.shutdown()
} finally {
  await client.close()
  await source.stop()
  await destination.stop()
}
