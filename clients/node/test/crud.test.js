import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoBulkWriteError, MongoServerError, ObjectId } from 'mongodb';
import { freshDb, startServer } from '../lib/server.js';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const asArray = (x) => (Array.isArray(x) ? x : [x]);

describe('CRUD', () => {
  it('insertOne generates an ObjectId', async () => {
    const db = await freshDb(server.client, 'insert_one');
    const doc = { a: 1 };
    const res = await db.collection('c').insertOne(doc);
    assert.equal(res.acknowledged, true);
    assert.ok(res.insertedId instanceof ObjectId);
    assert.deepEqual(await db.collection('c').findOne({ _id: res.insertedId }), {
      _id: res.insertedId,
      a: 1,
    });
  });

  it('insertMany returns every id', async () => {
    const db = await freshDb(server.client, 'insert_many');
    const res = await db.collection('c').insertMany([{ n: 0 }, { n: 1 }, { _id: 'k', n: 2 }]);
    assert.equal(res.insertedCount, 3);
    assert.ok(res.insertedIds[0] instanceof ObjectId);
    assert.equal(res.insertedIds[2], 'k');
    assert.equal(await db.collection('c').countDocuments(), 3);
  });

  it('duplicate _id on insertOne carries keyPattern and keyValue', async () => {
    const db = await freshDb(server.client, 'dup_one');
    const c = db.collection('c');
    await c.insertOne({ _id: 1 });
    await assert.rejects(c.insertOne({ _id: 1 }), (err) => {
      assert.ok(err instanceof MongoServerError);
      assert.equal(err.code, 11000);
      assert.deepEqual(err.keyPattern, { _id: 1 });
      assert.deepEqual(err.keyValue, { _id: 1 });
      assert.equal(
        err.errmsg,
        `E11000 duplicate key error collection: ${db.databaseName}.c index: _id_ dup key: { _id: 1 }`,
      );
      return true;
    });
  });

  it('ordered and unordered insertMany with duplicates', async () => {
    const db = await freshDb(server.client, 'dup_many');
    const docs = () => [{ _id: 1 }, { _id: 2 }, { _id: 1 }, { _id: 3 }, { _id: 2 }];
    await assert.rejects(db.collection('o').insertMany(docs(), { ordered: true }), (err) => {
      assert.ok(err instanceof MongoBulkWriteError);
      assert.equal(err.code, 11000);
      assert.equal(err.insertedCount, 2);
      const errors = asArray(err.writeErrors);
      assert.deepEqual(
        errors.map((e) => [e.index, e.code]),
        [[2, 11000]],
      );
      return true;
    });
    await assert.rejects(db.collection('u').insertMany(docs(), { ordered: false }), (err) => {
      assert.equal(err.insertedCount, 3);
      const errors = asArray(err.writeErrors);
      assert.deepEqual(
        errors.map((e) => [e.index, e.code]),
        [
          [2, 11000],
          [4, 11000],
        ],
      );
      return true;
    });
    assert.equal(await db.collection('o').countDocuments(), 2);
    assert.equal(await db.collection('u').countDocuments(), 3);
  });

  it('update operators, no-op updates and upserts', async () => {
    const db = await freshDb(server.client, 'updates');
    const c = db.collection('c');
    await c.insertOne({ _id: 1, n: 5, arr: [1], gone: true });
    let res = await c.updateOne(
      { _id: 1 },
      { $inc: { n: 2 }, $push: { arr: 2 }, $unset: { gone: '' }, $set: { 'sub.x': 1 } },
    );
    assert.equal(res.matchedCount, 1);
    assert.equal(res.modifiedCount, 1);
    assert.deepEqual(await c.findOne({ _id: 1 }), { _id: 1, n: 7, arr: [1, 2], sub: { x: 1 } });

    res = await c.updateOne({ _id: 1 }, { $set: { n: 7 } });
    assert.equal(res.matchedCount, 1);
    assert.equal(res.modifiedCount, 0);

    res = await c.updateOne({ k: 'new' }, { $set: { v: 1 } }, { upsert: true });
    assert.equal(res.matchedCount, 0);
    assert.equal(res.upsertedCount, 1);
    assert.ok(res.upsertedId instanceof ObjectId);
    assert.deepEqual(await c.findOne({ _id: res.upsertedId }), {
      _id: res.upsertedId,
      k: 'new',
      v: 1,
    });

    res = await c.updateMany({}, { $set: { all: true } });
    assert.equal(res.matchedCount, 2);
    assert.equal(res.modifiedCount, 2);
  });

  it('replaceOne and the immutable _id', async () => {
    const db = await freshDb(server.client, 'replace');
    const c = db.collection('c');
    await c.insertOne({ _id: 1, a: 1 });
    const res = await c.replaceOne({ _id: 1 }, { b: 2 });
    assert.equal(res.modifiedCount, 1);
    assert.deepEqual(await c.findOne(), { _id: 1, b: 2 });
    await assert.rejects(c.updateOne({ _id: 1 }, { $set: { _id: 5 } }), { code: 66 });
  });

  it('deleteOne and deleteMany', async () => {
    const db = await freshDb(server.client, 'deletes');
    const c = db.collection('c');
    await c.insertMany([...Array(9).keys()].map((i) => ({ _id: i, g: i % 3 })));
    assert.equal((await c.deleteOne({ g: 1 })).deletedCount, 1);
    assert.equal((await c.deleteMany({ g: 1 })).deletedCount, 2);
    assert.equal((await c.deleteMany({ g: 9 })).deletedCount, 0);
    assert.equal(await c.countDocuments(), 6);
  });

  it('findOneAndUpdate returns the document before or after', async () => {
    const db = await freshDb(server.client, 'find_and_modify');
    const c = db.collection('c');
    await c.insertOne({ _id: 1, n: 1 });
    assert.deepEqual(await c.findOneAndUpdate({ _id: 1 }, { $inc: { n: 1 } }), { _id: 1, n: 1 });
    assert.deepEqual(
      await c.findOneAndUpdate({ _id: 1 }, { $inc: { n: 1 } }, { returnDocument: 'after' }),
      { _id: 1, n: 3 },
    );
    const full = await c.findOneAndUpdate(
      { _id: 1 },
      { $inc: { n: 1 } },
      { includeResultMetadata: true },
    );
    assert.equal(full.ok, 1);
    assert.deepEqual(full.value, { _id: 1, n: 3 });
    assert.equal(full.lastErrorObject.n, 1);
    assert.equal(full.lastErrorObject.updatedExisting, true);
    assert.equal(await c.findOneAndUpdate({ _id: 2 }, { $inc: { n: 1 } }), null);
    assert.deepEqual(await c.findOneAndDelete({ _id: 1 }), { _id: 1, n: 4 });
  });

  it('bulkWrite mixes operations', async () => {
    const db = await freshDb(server.client, 'bulk');
    const c = db.collection('c');
    await c.insertMany([{ _id: 1 }, { _id: 2 }]);
    const res = await c.bulkWrite([
      { insertOne: { document: { _id: 3 } } },
      { updateOne: { filter: { _id: 1 }, update: { $set: { a: 1 } } } },
      { updateOne: { filter: { _id: 9 }, update: { $set: { a: 9 } }, upsert: true } },
      { deleteOne: { filter: { _id: 2 } } },
    ]);
    assert.equal(res.insertedCount, 1);
    assert.equal(res.matchedCount, 1);
    assert.equal(res.modifiedCount, 1);
    assert.equal(res.upsertedCount, 1);
    assert.deepEqual(res.upsertedIds, { 2: 9 });
    assert.equal(res.deletedCount, 1);
  });
});
