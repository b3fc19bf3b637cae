import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Decimal128, MongoServerError } from 'mongodb';
import { freshDb, startServer } from '../lib/server.js';

// Transactions, snapshot sessions and the query language through the Node.js driver, with the
// answers a MongoDB 8.0 replica set gives.

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

describe('sessions', () => {
  it('commits a transaction with withTransaction and hides it until then', async () => {
    const db = await freshDb(server.client, 'with_txn');
    const coll = db.collection('c');
    await coll.insertOne({ _id: 0 });
    const session = server.client.startSession();
    try {
      await session.withTransaction(async () => {
        await coll.insertOne({ _id: 1 }, { session });
        // Outside the transaction the write is not visible yet.
        assert.equal(await coll.countDocuments({}), 1);
        assert.equal(await coll.countDocuments({}, { session }), 2);
      });
    } finally {
      await session.endSession();
    }
    assert.deepEqual(await coll.find({}).sort({ _id: 1 }).toArray(), [{ _id: 0 }, { _id: 1 }]);
  });

  it('aborts a transaction: nothing is written', async () => {
    const db = await freshDb(server.client, 'abort_txn');
    const coll = db.collection('c');
    await coll.insertOne({ _id: 0 });
    const session = server.client.startSession();
    try {
      session.startTransaction();
      await coll.insertOne({ _id: 1 }, { session });
      await coll.deleteOne({ _id: 0 }, { session });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    assert.deepEqual(await coll.find({}).toArray(), [{ _id: 0 }]);
  });

  it('a write conflict between two transactions is a WriteConflict with a transient label', async () => {
    const db = await freshDb(server.client, 'conflict_txn');
    const coll = db.collection('c');
    await coll.insertOne({ _id: 1, n: 0 });
    const a = server.client.startSession();
    const b = server.client.startSession();
    try {
      a.startTransaction();
      b.startTransaction();
      await coll.updateOne({ _id: 1 }, { $inc: { n: 1 } }, { session: a });
      const err = await coll.updateOne({ _id: 1 }, { $inc: { n: 10 } }, { session: b }).then(
        () => null,
        (e) => e,
      );
      assert.ok(err instanceof MongoServerError, `expected a server error, got ${err}`);
      assert.equal(err.code, 112);
      assert.ok(err.hasErrorLabel('TransientTransactionError'));
      await b.abortTransaction();
      await a.commitTransaction();
    } finally {
      await a.endSession();
      await b.endSession();
    }
    assert.equal((await coll.findOne({ _id: 1 })).n, 1);
  });

  it('a snapshot session reads one point in time', async () => {
    const db = await freshDb(server.client, 'snapshot');
    const coll = db.collection('c');
    await coll.insertOne({ _id: 1 });
    const session = server.client.startSession({ snapshot: true });
    try {
      assert.deepEqual(await coll.find({}, { session }).toArray(), [{ _id: 1 }]);
      await coll.insertOne({ _id: 2 });
      assert.deepEqual(await coll.find({}, { session }).toArray(), [{ _id: 1 }]);
    } finally {
      await session.endSession();
    }
    assert.equal(await coll.countDocuments({}), 2);
  });
});

describe('query language', () => {
  it('sums decimals exactly', async () => {
    const db = await freshDb(server.client, 'decimals');
    const coll = db.collection('d');
    await coll.insertMany([1, 2, 3].map(() => ({ v: Decimal128.fromString('0.1') })));
    const [got] = await coll.aggregate([{ $group: { _id: null, s: { $sum: '$v' } } }]).toArray();
    assert.equal(got.s.toString(), '0.3');
  });

  it('formats dates in a named time zone across daylight saving', async () => {
    const db = await freshDb(server.client, 'zones');
    const coll = db.collection('t');
    await coll.insertMany([
      { _id: 'summer', at: new Date('2024-07-01T12:00:00Z') },
      { _id: 'winter', at: new Date('2024-01-15T12:00:00Z') },
    ]);
    const fmt = { format: '%H:%M %z', date: '$at', timezone: 'Europe/Paris' };
    const got = await coll.aggregate([{ $project: { s: { $dateToString: fmt } } }, { $sort: { _id: 1 } }]).toArray();
    assert.deepEqual(got, [
      { _id: 'summer', s: '14:00 +0200' },
      { _id: 'winter', s: '13:00 +0100' },
    ]);
  });

  it('finds text with a text index and refuses $text without one', async () => {
    const db = await freshDb(server.client, 'text');
    const coll = db.collection('posts');
    await coll.insertMany([
      { _id: 1, body: 'coffee shop' },
      { _id: 2, body: 'tea house' },
    ]);
    await assert.rejects(coll.find({ $text: { $search: 'coffee' } }).toArray(), (e) => e.code === 27);
    await coll.createIndex({ body: 'text' });
    const got = await coll.find({ $text: { $search: 'coffee' } }).toArray();
    assert.deepEqual(got.map((d) => d._id), [1]);
  });
});
