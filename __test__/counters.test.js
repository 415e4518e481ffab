'use strict'

// store.stats(): hits, misses, failed calls, and undecryptable values by the key that sealed
// them, so that an operator knows when an old key is no longer read.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { RedisStore } = require('..')
const { RedisServer } = require('./helpers/redis-server')

const session = (extra) => ({ cookie: { originalMaxAge: null }, ...extra })

describe('store.stats()', () => {
  let server

  before(async () => {
    server = await RedisServer.start()
  })

  after(async () => {
    await server.stop()
  })

  it('counts hits, misses and values sealed with a key the store no longer holds', async () => {
    const oldKey = Buffer.alloc(32, 7)
    const writer = new RedisStore({ url: server.url, secret: 's', encryptionKeys: [oldKey] })
    await once(writer, 'connect')
    await writer.set('old-1', session())
    await writer.set('old-2', session())
    const oldId = (await writer.inspect('old-1')).keyId
    await writer.close()

    const reader = new RedisStore({ url: server.url, secret: 's' })
    await once(reader, 'connect')
    await reader.set('new-1', session())
    await reader.get('new-1')
    await reader.get('nobody')
    await reader.get('old-1')
    await reader.get('old-2')

    const stats = reader.stats()
    assert.equal(stats.hits, 1)
    assert.equal(stats.misses, 1)
    assert.equal(stats.errors, 0)
    assert.deepEqual(stats.undecryptable, { [oldId]: 2 })
    await reader.close()
  })

  it('counts calls that failed on Redis', async () => {
    const other = await RedisServer.start()
    const store = new RedisStore({ url: other.url, secret: 's', commandTimeout: 300 })
    await once(store, 'connect')
    const lost = once(store, 'disconnect')
    await other.kill()
    await lost
    await assert.rejects(store.get('x'))
    await assert.rejects(store.set('x', session()))
    assert.equal(store.stats().errors, 2)
    await store.close()
    await other.stop()
  })
})
