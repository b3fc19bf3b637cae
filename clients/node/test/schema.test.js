import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Binary, MongoServerError } from 'mongodb';
import { freshDb, startServer } from '../lib/server.js';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

describe('indexes', () => {
  it('unique index rejects duplicates with details', async () => {
    const db = await freshDb(server.client, 'unique');
    const c = db.collection('c');
    assert.equal(await c.createIndex({ a: 1 }, { unique: true }), 'a_1');
    await c.insertOne({ a: 1 });
    await assert.rejects(c.insertOne({ a: 1 }), (err) => {
      assert.ok(err instanceof MongoServerError);
      assert.equal(err.code, 11000);
      assert.deepEqual(err.keyPattern, { a: 1 });
      assert.deepEqual(err.keyValue, { a: 1 });
      assert.match(err.errmsg, / index: a_1 dup key: \{ a: 1 \}$/);
      return true;
    });
  });

  it('listIndexes and dropIndex', async () => {
    const db = await freshDb(server.client, 'list_drop');
    const c = db.collection('c');
    await c.createIndex({ a: 1 }, { unique: true });
    await c.createIndex({ b: -1, c: 1 }, { name: 'bc' });
    assert.deepEqual(await c.listIndexes().toArray(), [
      { v: 2, key: { _id: 1 }, name: '_id_' },
      { v: 2, key: { a: 1 }, name: 'a_1', unique: true },
      { v: 2, key: { b: -1, c: 1 }, name: 'bc' },
    ]);
    await c.dropIndex('a_1');
    assert.deepEqual(
      (await c.listIndexes().toArray()).map((i) => i.name),
      ['_id_', 'bc'],
    );
    await assert.rejects(c.dropIndex('nope_1'), { code: 27, codeName: 'IndexNotFound' });
  });

  it('conflicting index definitions', async () => {
    const db = await freshDb(server.client, 'conflicts');
    const c = db.collection('c');
    await c.createIndex({ a: 1 });
    await assert.rejects(c.createIndex({ a: 1 }, { name: 'other' }), {
      code: 85,
      codeName: 'IndexOptionsConflict',
    });
    await c.createIndex({ x: 1 }, { name: 'idx' });
    await assert.rejects(c.createIndex({ y: 1 }, { name: 'idx' }), {
      code: 86,
      codeName: 'IndexKeySpecsConflict',
    });
  });
});

describe('listCollections', () => {
  it('reports type, options, info.uuid and idIndex', async () => {
    const db = await freshDb(server.client, 'list_colls');
    await db.createCollection('plain');
    await db.createCollection('capped', { capped: true, size: 4096 });
    const validator = { $jsonSchema: { bsonType: 'object', required: ['name'] } };
    await db.createCollection('validated', { validator });
    const all = Object.fromEntries(
      (await db.listCollections().toArray()).map((e) => [e.name, e]),
    );
    assert.deepEqual(Object.keys(all).sort(), ['capped', 'plain', 'validated']);
    const plain = all.plain;
    assert.equal(plain.type, 'collection');
    assert.deepEqual(plain.options, {});
    assert.equal(plain.info.readOnly, false);
    assert.ok(plain.info.uuid instanceof Binary);
    assert.equal(plain.info.uuid.sub_type, 4);
    assert.equal(plain.info.uuid.length(), 16);
    assert.deepEqual(plain.idIndex, { v: 2, key: { _id: 1 }, name: '_id_' });
    assert.deepEqual(all.capped.options, { capped: true, size: 4096 });
    assert.deepEqual(all.validated.options, {
      validator,
      validationLevel: 'strict',
      validationAction: 'error',
    });
    assert.notEqual(plain.info.uuid.toString('hex'), all.capped.info.uuid.toString('hex'));
  });

  it('filter and nameOnly', async () => {
    const db = await freshDb(server.client, 'list_filter');
    for (const name of ['alpha', 'beta']) await db.createCollection(name);
    await db.createCollection('capped', { capped: true, size: 1024 });
    assert.deepEqual(
      (await db.listCollections({ 'options.capped': true }).toArray()).map((e) => e.name),
      ['capped'],
    );
    assert.deepEqual(await db.listCollections({ name: 'beta' }, { nameOnly: true }).toArray(), [
      { name: 'beta', type: 'collection' },
    ]);
  });
});

describe('errors', () => {
  it('unknown command is 59', async () => {
    const db = await freshDb(server.client, 'unknown_cmd');
    await assert.rejects(db.command({ notARealCommand: 1 }), {
      code: 59,
      codeName: 'CommandNotFound',
      errmsg: "no such command: 'notARealCommand'",
    });
  });

  it('create with different options is NamespaceExists 48', async () => {
    const db = await freshDb(server.client, 'ns_exists');
    await db.command({ create: 'c' });
    await db.command({ create: 'c' }); // same options: accepted
    await assert.rejects(db.command({ create: 'c', capped: true, size: 4096 }), {
      code: 48,
      codeName: 'NamespaceExists',
    });
  });

  it('validator rejects with 121 unless bypassed', async () => {
    const db = await freshDb(server.client, 'validation');
    const c = await db.createCollection('v', { validator: { qty: { $type: 'int' } } });
    await assert.rejects(c.insertOne({ _id: 1, qty: 'many' }), (err) => {
      assert.equal(err.code, 121);
      assert.equal(err.errmsg, 'Document failed validation');
      assert.equal(err.errInfo.failingDocumentId, 1);
      return true;
    });
    await c.insertOne({ _id: 2, qty: 'many' }, { bypassDocumentValidation: true });
    assert.equal(await c.countDocuments(), 1);
  });
});

describe('handshake', () => {
  it('connects (legacy OP_QUERY isMaster first) and reads hello', async () => {
    const hello = await server.client.db('admin').command({ hello: 1 });
    assert.equal(hello.isWritablePrimary, true);
    assert.equal(hello.setName, 'rs0');
    assert.equal(hello.maxWireVersion, 25);
    const info = await server.client.db('admin').command({ buildInfo: 1 });
    assert.match(info.version, /^8\.0\./);
  });

  it('connects with directConnection=true', async () => {
    const { MongoClient } = await import('mongodb');
    const url = new URL(server.uri);
    const direct = new MongoClient(`mongodb://${url.host}/?directConnection=true`);
    try {
      await direct.connect();
      const ping = await direct.db('admin').command({ ping: 1 });
      assert.equal(ping.ok, 1);
    } finally {
      await direct.close();
    }
  });
});
