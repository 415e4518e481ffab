'use strict'

// Sentinel: the store finds the primary through the sentinels, and after a SENTINEL FAILOVER
// under load it reconnects to the new primary by itself, keeping what was written before.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { RedisStore } = require('..')
const { startLoad } = require('./helpers/load')
const { waitUntil } = require('./helpers/redis-server')
const { RedisSentinel } = require('./helpers/redis-sentinel')

const session = (extra) => ({ cookie: { originalMaxAge: null }, ...extra })

describe('with Sentinel', () => {
  let sentinel
  let store
  const events = []

  before(async () => {
    sentinel = await RedisSentinel.start({ masterName: 'campus' })
    store = new RedisStore({
      sentinel: { nodes: sentinel.sentinels, masterName: 'campus' },
      secret: 's',
      commandTimeout: 1000,
    })
    store.on('connect', () => events.push('connect'))
    store.on('disconnect', (reason) => events.push(`disconnect: ${reason}`))
    await once(store, 'connect')
  })

  after(async () => {
    await store?.close()
    await sentinel?.stop()
  })

  it('reads and writes on the primary that Sentinel names', async () => {
    await store.set('s-1', session({ v: 1 }))
    assert.equal((await store.get('s-1')).v, 1)
  })

  it('waitReplicas: acknowledged once a replica has the write, refused otherwise', async () => {
    await sentinel.waitForReplica()
    const where = { nodes: sentinel.sentinels, masterName: 'campus' }
    const options = { sentinel: where, secret: 's' }
    const one = new RedisStore({ ...options, waitReplicas: 1, waitTimeout: 500 })
    await once(one, 'connect')
    await one.set('acked', session({ v: 1 }))
    await one.destroy('acked')
    await one.close()

    const two = new RedisStore({ ...options, waitReplicas: 2, waitTimeout: 100 })
    await once(two, 'connect')
    await assert.rejects(two.set('not-acked', session({ v: 1 })), (err) => {
      assert.equal(err.code, 'ERR_REDIS_WAIT')
      assert.match(err.message, /1 of 2 replicas/)
      return true
    })
    await two.close()
    assert.throws(() => new RedisStore({ ...options, waitReplicas: 1, waitTimeout: 5000 }),
      /`waitTimeout`/)
  })

  it('follows a SENTINEL FAILOVER under load; sessions written before are kept', async () => {
    const sids = Array.from({ length: 100 }, (_, i) => `before-failover-${i}`)
    await Promise.all(sids.map((sid) => store.set(sid, session({ sid }))))
    await sentinel.waitForReplica()
    const oldPort = await sentinel.primaryPort()
    const load = setLoad(store)

    const started = Date.now()
    const newPort = await sentinel.failover({ demote: true })
    assert.notEqual(newPort, oldPort)
    await waitUntil(() => events.some((event) => event.startsWith('disconnect')), 5000)
    await waitUntil(() => events.at(-1) === 'connect', 5000)
    const followedMs = Date.now() - started
    const { ok, failed } = await load.stop()

    await store.set('after-failover', session({ v: 2 }))
    assert.equal((await store.get('after-failover')).v, 2)
    const loaded = await Promise.all(sids.map((sid) => store.get(sid)))
    const lost = sids.filter((sid, i) => !loaded[i] || loaded[i].sid !== sid)
    console.log(`# sentinel failover followed in ${followedMs} ms: ${ok} calls ok, ` +
      `${failed} failed, ${lost.length} of ${sids.length} sessions lost`)
    assert.deepEqual(lost, [])
  })
})

/** 8 loops writing sessions until stopped. */
function setLoad(store) {
  return startLoad(8, (n, i) => store.set(`load-${n}-${i % 20}`, session({ i })))
}
