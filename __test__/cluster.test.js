'use strict'

// Redis Cluster: every method across slots, listing over every primary, tombstones, and a
// primary failing over under load without losing what was written before.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { RedisStore } = require('..')
const { startLoad } = require('./helpers/load')
const { RedisCluster } = require('./helpers/redis-cluster')

const session = (extra) => ({ cookie: { originalMaxAge: null }, ...extra })
const SIDS = Array.from({ length: 200 }, (_, i) => `cluster-sid-${i}`)

describe('on a Redis Cluster of 3 primaries and 3 replicas', () => {
  let cluster
  let store

  before(async () => {
    cluster = await RedisCluster.start({ primaries: 3, replicasPerPrimary: 1 })
    store = new RedisStore({ cluster: cluster.seeds, secret: 's', commandTimeout: 3000 })
    await once(store, 'connect')
  })

  after(async () => {
    await store?.close()
    await cluster?.stop()
  })

  it('set, get, touch and destroy work for sids on every slot', async () => {
    await Promise.all(SIDS.map((sid) => store.set(sid, session({ sid }))))
    const loaded = await Promise.all(SIDS.map((sid) => store.get(sid)))
    assert.deepEqual(loaded.map((s) => s.sid), SIDS)

    await store.touch(SIDS[0], session({}))
    await store.destroy(SIDS[1])
    assert.equal(await store.get(SIDS[1]), null)
    await store.set(SIDS[1], session({ late: true }))
    assert.equal(await store.get(SIDS[1]), null, 'a late write revived a destroyed session')
  })

  it('ids, length and all walk every primary; clear removes only sessions', async () => {
    const expected = SIDS.filter((sid) => sid !== SIDS[1]).sort()
    assert.equal(await store.length(), expected.length)
    assert.deepEqual((await store.ids()).sort(), expected)
    assert.deepEqual((await store.all()).map((s) => s.id).sort(), expected)

    await store.clear()
    assert.equal(await store.length(), 0)
  })

  it('the cookie helper and scanStats work across the cluster', async () => {
    await store.set('cookie-sid', session({ userId: 'u-1' }))
    const { sign } = require('..')
    const cookie = `connect.sid=${encodeURIComponent(`s:${sign('cookie-sid', 's')}`)}`
    assert.equal((await store.getSessionFromRawCookie(cookie)).userId, 'u-1')
    const stats = await store.scanStats()
    assert.equal(stats.sessions, 1)
    assert.equal(stats.tombstones, 1)
  })

  it('a primary fails over under load: the store follows, nothing written is lost', async () => {
    const sids = SIDS.map((sid) => `before-failover-${sid}`)
    await Promise.all(sids.map((sid) => store.set(sid, session({ sid }))))
    const load = setGetLoad(store)
    const [primary] = await cluster.primaries()
    const started = Date.now()
    await cluster.failover(primary.port)
    const failedOverMs = Date.now() - started
    const { ok, failed } = await load.stop()

    const loaded = await Promise.all(sids.map((sid) => store.get(sid)))
    const lost = sids.filter((sid, i) => !loaded[i] || loaded[i].sid !== sid)
    assert.deepEqual(lost, [])
    assert.ok(ok > 0, 'no call succeeded during the failover')
    console.log(`# failover ${failedOverMs} ms: ${ok} calls ok, ${failed} failed, 0 lost`)
  })
})

describe('when a primary of the cluster dies', () => {
  let cluster
  let store

  before(async () => {
    cluster = await RedisCluster.start({ primaries: 3, replicasPerPrimary: 1 })
    store = new RedisStore({ cluster: cluster.seeds, secret: 's', commandTimeout: 1000 })
    await once(store, 'connect')
  })

  after(async () => {
    await store?.close()
    await cluster?.stop()
  })

  it('calls fail briefly, then the store follows the promoted replica', async () => {
    const sids = SIDS.map((sid) => `before-kill-${sid}`)
    await Promise.all(sids.map((sid) => store.set(sid, session({ sid }))))
    await new Promise((resolve) => setTimeout(resolve, 200))
    const load = setGetLoad(store)
    const [primary] = await cluster.primaries()

    const killedAt = Date.now()
    await cluster.kill(primary.port)
    await cluster.failover(primary.port, { force: true })
    const recoveredMs = Date.now() - killedAt
    const { ok, failed } = await load.stop()

    await store.set('after-kill', session({ v: 1 }))
    assert.equal((await store.get('after-kill')).v, 1)
    const loaded = await Promise.all(sids.map((sid) => store.get(sid)))
    const lost = sids.filter((sid, i) => !loaded[i] || loaded[i].sid !== sid)
    console.log(`# kill: promoted after ${recoveredMs} ms; ${ok} calls ok, ${failed} failed, ` +
      `${lost.length} of ${sids.length} sessions lost`)
    assert.deepEqual(lost, [])
  })
})

/** 16 loops writing and reading sessions until stopped. */
function setGetLoad(store) {
  return startLoad(16, async (n, i) => {
    const sid = `load-${n}-${i % 50}`
    await store.set(sid, session({ i }))
    await store.get(sid)
  })
}
