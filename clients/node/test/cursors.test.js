import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Long, MongoClient, MongoServerError } from 'mongodb';
import { freshDb, startServer } from '../lib/server.js';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function fill(coll, n) {
  await coll.insertMany([...Array(n).keys()].map((i) => ({ _id: i, n: i, pad: 'x'.repeat(20) })));
}

/** A second client that records every succeeded command as [name, command, reply]. */
async function loggedClient() {
  const log = [];
  const started = new Map();
  const client = new MongoClient(server.uri, { monitorCommands: true });
  client.on('commandStarted', (e) => started.set(e.requestId, e.command));
  client.on('commandSucceeded', (e) => {
    log.push([e.commandName, started.get(e.requestId), e.reply]);
    started.delete(e.requestId);
  });
  await client.connect();
  return { client, log };
}

describe('cursors', () => {
  it('iterates 10k documents through many getMores', async () => {
    const db = await freshDb(server.client, 'many_getmores');
    await fill(db.collection('c'), 10_000);
    const { client, log } = await loggedClient();
    try {
      const docs = await client
        .db(db.databaseName)
        .collection('c')
        .find({}, { sort: { _id: 1 }, batchSize: 100 })
        .toArray();
      assert.equal(docs.length, 10_000);
      assert.ok(docs.every((d, i) => d._id === i));
      const find = log.find(([name]) => name === 'find');
      assert.equal(find[2].cursor.firstBatch.length, 100);
      assert.equal(find[2].cursor.ns, `${db.databaseName}.c`);
      const getMores = log.filter(([name]) => name === 'getMore');
      assert.ok(getMores.length >= 99 && getMores.length <= 100, `${getMores.length} getMores`);
      for (const [, cmd, reply] of getMores) {
        assert.equal(cmd.collection, 'c');
        assert.ok(reply.cursor.nextBatch.length <= 100);
      }
      assert.equal(Number(getMores.at(-1)[2].cursor.id), 0);
    } finally {
      await client.close();
    }
  });

  it('sort, skip and limit', async () => {
    const db = await freshDb(server.client, 'sort_skip_limit');
    await fill(db.collection('c'), 100);
    const got = await db
      .collection('c')
      .find({ n: { $lt: 50 } })
      .sort({ n: -1 })
      .skip(10)
      .limit(5)
      .project({ _id: 0, n: 1 })
      .toArray();
    assert.deepEqual(got, [{ n: 39 }, { n: 38 }, { n: 37 }, { n: 36 }, { n: 35 }]);
  });

  it('close() kills the server cursor', async () => {
    const db = await freshDb(server.client, 'close_kills');
    await fill(db.collection('c'), 100);
    const { client, log } = await loggedClient();
    try {
      const cursor = client.db(db.databaseName).collection('c').find({}, { batchSize: 10 });
      await cursor.next();
      const id = cursor.id;
      assert.ok(id instanceof Long && !id.isZero());
      await cursor.close();
      const kill = log.find(([name]) => name === 'killCursors');
      assert.ok(kill, 'killCursors sent');
      assert.equal(kill[1].killCursors, 'c');
      assert.deepEqual(kill[2].cursorsKilled.map(String), [String(id)]);
      await assert.rejects(
        db.command({ getMore: id, collection: 'c' }),
        (err) => err instanceof MongoServerError && err.code === 43,
      );
    } finally {
      await client.close();
    }
  });

  it('getMore of an unknown cursor is CursorNotFound', async () => {
    const db = await freshDb(server.client, 'cursor_not_found');
    await db.collection('c').insertOne({});
    await assert.rejects(db.command({ getMore: Long.fromNumber(123456789), collection: 'c' }), {
      code: 43,
      codeName: 'CursorNotFound',
    });
  });

  it('aggregate streams through getMore', async () => {
    const db = await freshDb(server.client, 'aggregate');
    await fill(db.collection('c'), 500);
    const got = await db
      .collection('c')
      .aggregate(
        [
          { $match: { n: { $gte: 100 } } },
          { $group: { _id: { $mod: ['$n', 2] }, count: { $sum: 1 } } },
          { $sort: { _id: 1 } },
        ],
        { batchSize: 1 },
      )
      .toArray();
    assert.deepEqual(got, [
      { _id: 0, count: 200 },
      { _id: 1, count: 200 },
    ]);
    assert.equal(await db.collection('c').countDocuments({ n: { $lt: 10 } }), 10);
    assert.equal(await db.collection('c').estimatedDocumentCount(), 500);
    assert.deepEqual(
      (await db.collection('c').distinct('n', { n: { $lt: 3 } })).sort(),
      [0, 1, 2],
    );
  });
});
