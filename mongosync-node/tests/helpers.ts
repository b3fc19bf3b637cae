// Shared by the tests: two authenticated in-memory clusters and a document-by-document
// comparison. Every cluster runs with auth on: the engine bypasses write blocking only as a
// user holding `bypassWriteBlockingMode` (root has it).
import assert from 'node:assert/strict'
import { MongoClient } from 'mongodb'
import { MemoryCluster } from 'mongosync-node'

export const USER = 'admin'
export const PASSWORD = 'n0de-Pa55!word'

/** The documents of the tests: numeric `_id`s. */
export interface Doc {
  _id: number
  n?: number
  pad?: string
  updated?: boolean
}

export interface Pair {
  source: MemoryCluster
  destination: MemoryCluster
  src: MongoClient
  dst: MongoClient
  close(): Promise<void>
}

/** Two clusters with auth, and a driver client on each. */
export async function pair(): Promise<Pair> {
  const auth = { user: USER, password: PASSWORD }
  const source = await MemoryCluster.start({ auth })
  const destination = await MemoryCluster.start({ auth })
  const src = await MongoClient.connect(source.uriWithCredentials)
  const dst = await MongoClient.connect(destination.uriWithCredentials)
  return {
    source,
    destination,
    src,
    dst,
    async close() {
      await src.close()
      await dst.close()
      await source.stop()
      await destination.stop()
    },
  }
}

/** Inserts `n` documents `{_id: from + i, n: i, pad}` into `db.coll`. */
export async function seed(client: MongoClient, db: string, coll: string, n: number, from = 0): Promise<void> {
  const docs = Array.from({ length: n }, (_, i) => ({ _id: from + i, n: i, pad: 'x'.repeat(200) }))
  await client.db(db).collection<Doc>(coll).insertMany(docs)
}

/** Asserts that both sides hold the same documents, one by one, in `_id` order. */
export async function assertSame(a: MongoClient, b: MongoClient, db: string, coll: string): Promise<number> {
  const left = await a.db(db).collection(coll).find().sort({ _id: 1 }).toArray()
  const right = await b.db(db).collection(coll).find().sort({ _id: 1 }).toArray()
  assert.equal(right.length, left.length, `${db}.${coll}: document counts differ`)
  for (let i = 0; i < left.length; i++) {
    assert.deepStrictEqual(right[i], left[i], `${db}.${coll}: document ${i} differs`)
  }
  return left.length
}

/** Writes to `db.coll` until stopped: inserts, updates and deletes; counts them. */
export function writer(client: MongoClient, db: string, coll: string, firstId: number) {
  let stop = false
  let writes = 0
  const c = client.db(db).collection<Doc>(coll)
  const done = (async () => {
    for (let id = firstId; !stop; id++) {
      await c.insertOne({ _id: id, n: id, pad: 'w' })
      await c.updateOne({ _id: id - 1 }, { $set: { updated: true }, $inc: { n: 1 } })
      if (id % 5 === 0) await c.deleteOne({ _id: id - 3 })
      writes += 3
    }
  })()
  return {
    get writes() {
      return writes
    },
    async stop() {
      stop = true
      await done
    },
  }
}
