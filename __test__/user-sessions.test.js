'use strict'

// Log out everywhere: the per-user index kept with set, touch, destroy and expiry, listed
// and destroyed on one Redis and on a Redis Cluster, with many sessions and concurrent logins.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const express = require('express')
const session = require('express-session')
const { RedisStore } = require('..')
const { closeServer, listen } = require('./helpers/http')
const { RedisCluster } = require('./helpers/redis-cluster')
const { RedisServer } = require('./helpers/redis-server')

const SECRET = 'everywhere'
const INDEX = 'user-sessions:session:'
const HOUR = 3_600_000

const sessionOf = (userId, ms = HOUR) =>
  ({ cookie: { originalMaxAge: ms, expires: new Date(Date.now() + ms) }, userId })

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The behaviour both deployments must show; `ctx` holds `store` and a raw `redis` client. */
function indexBehaviour(ctx) {
  it('lists every session of a user, with TTL and last write, and no one else\'s', async () => {
    const before = Date.now()
    const sids = Array.from({ length: 60 }, (_, i) => `many-${i}`)
    await Promise.all(sids.map((sid) => ctx.store.set(sid, sessionOf('many'))))
    await ctx.store.set('other-1', sessionOf('someone-else'))

    const listed = await ctx.store.listUserSessions('many')
    assert.deepEqual(listed.map((s) => s.sid).sort(), [...sids].sort())
    for (const entry of listed) {
      assert.ok(entry.ttlMs > HOUR - 60_000 && entry.ttlMs <= HOUR, `ttl ${entry.ttlMs}`)
      assert.ok(entry.lastWrite instanceof Date)
      assert.ok(entry.lastWrite.getTime() >= before - 5 && entry.lastWrite.getTime() <= Date.now())
    }
    assert.deepEqual((await ctx.store.listUserSessions('someone-else')).map((s) => s.sid),
      ['other-1'])
  })

  it('keeps every session of concurrent logins', async () => {
    const sids = Array.from({ length: 100 }, (_, i) => `race-${i}`)
    await Promise.all(sids.map((sid) => ctx.store.set(sid, sessionOf('racer'))))
    assert.equal((await ctx.store.listUserSessions('racer')).length, sids.length)
  })

  it('destroyUserSessions ends them all, spares other users, and they stay ended', async () => {
    const sids = Array.from({ length: 40 }, (_, i) => `all-${i}`)
    await Promise.all(sids.map((sid) => ctx.store.set(sid, sessionOf('leaver'))))
    await ctx.store.set('stayer-1', sessionOf('stayer'))

    assert.equal(await ctx.store.destroyUserSessions('leaver'), sids.length)
    const loaded = await Promise.all(sids.map((sid) => ctx.store.get(sid)))
    assert.ok(loaded.every((s) => s === null), 'a session survived log out everywhere')
    assert.deepEqual(await ctx.store.listUserSessions('leaver'), [])
    assert.equal(await ctx.redis.exists(INDEX + 'leaver'), 0, 'the emptied index stays')
    assert.equal((await ctx.store.get('stayer-1')).userId, 'stayer')

    // A request that loaded a session before the logout cannot write it back.
    await ctx.store.set(sids[0], sessionOf('leaver'))
    assert.equal(await ctx.store.get(sids[0]), null)
  })

  it('drops entries of destroyed sessions and of sessions now owned by another user', async () => {
    await ctx.store.set('mine-1', sessionOf('owner'))
    await ctx.store.set('mine-2', sessionOf('owner'))
    await ctx.store.set('mine-3', sessionOf('owner'))
    await ctx.store.destroy('mine-1')
    await ctx.store.set('mine-2', sessionOf('new-owner'))

    assert.deepEqual((await ctx.store.listUserSessions('owner')).map((s) => s.sid), ['mine-3'])
    assert.deepEqual(await ctx.redis.hKeys(INDEX + 'owner'), ['mine-3'])
    assert.equal(await ctx.store.destroyUserSessions('owner'), 1)
    const foreign = await ctx.store.get('mine-2')
    assert.equal(foreign.userId, 'new-owner', 'destroyed a foreign session')
  })

  it('forgets expired sessions, and the index expires with its last session', async () => {
    await ctx.store.set('short-1', sessionOf('brief', 300))
    await ctx.store.set('long-1', sessionOf('brief', 5000))
    const indexTtl = await ctx.redis.pTTL(INDEX + 'brief')
    assert.ok(indexTtl > 4000 && indexTtl <= 5000, `index ttl ${indexTtl}`)

    await sleep(500)
    assert.deepEqual((await ctx.store.listUserSessions('brief')).map((s) => s.sid), ['long-1'])
    assert.deepEqual(await ctx.redis.hKeys(INDEX + 'brief'), ['long-1'])
  })

  it('touch moves the recorded expiry later, so a renewed session is kept', async () => {
    await ctx.store.set('renewed', sessionOf('toucher', 400))
    await ctx.store.touch('renewed', sessionOf('toucher', HOUR))
    await ctx.store.set('trigger', sessionOf('toucher', HOUR))
    await sleep(600)
    await ctx.store.set('trigger', sessionOf('toucher', HOUR))
    const sids = (await ctx.store.listUserSessions('toucher')).map((s) => s.sid).sort()
    assert.deepEqual(sids, ['renewed', 'trigger'])
  })
}

describe('the per-user index on one Redis', () => {
  const ctx = {}
  let server

  before(async () => {
    server = await RedisServer.start()
    ctx.store = new RedisStore({ url: server.url, secret: SECRET, userIndex: true })
    await once(ctx.store, 'connect')
    ctx.redis = await server.client()
  })

  after(async () => {
    await ctx.redis?.quit()
    await ctx.store?.close()
    await server?.stop()
  })

  indexBehaviour(ctx)

  it('keeps the entry of a session sealed with a key this instance does not hold', async () => {
    // An instance deployed with a new first secret seals with a key the others lack.
    const newer = new RedisStore({ url: server.url, secret: ['newer', SECRET], userIndex: true })
    await once(newer, 'connect')
    try {
      await newer.set('sealed-newer', sessionOf('deployed'))

      assert.deepEqual(await ctx.store.listUserSessions('deployed'), [])
      assert.deepEqual(await ctx.redis.hKeys(INDEX + 'deployed'), ['sealed-newer'])
      assert.equal(await newer.destroyUserSessions('deployed'), 1)
      assert.equal(await newer.get('sealed-newer'), null)
    } finally {
      await newer.close()
    }
  })

  it('logs a user out on every browser through express-session', async () => {
    const app = express()
    app.use(session({ store: ctx.store, secret: SECRET, resave: false, saveUninitialized: false }))
    app.post('/login', async (req, res) => {
      await ctx.store.saveSession(req, 'web-user')
      res.end()
    })
    app.get('/me', (req, res) => res.status(req.session.userId ? 200 : 401).end())
    app.post('/logout-everywhere', async (req, res) => {
      res.json({ ended: await ctx.store.destroyUserSessions(req.session.userId) })
    })
    const server = await listen(app)
    const base = `http://127.0.0.1:${server.address().port}`
    try {
      const cookies = await Promise.all(Array.from({ length: 5 }, async () => {
        const res = await fetch(`${base}/login`, { method: 'POST' })
        return res.headers.getSetCookie()[0].split(';')[0]
      }))
      for (const cookie of cookies) {
        assert.equal((await fetch(`${base}/me`, { headers: { cookie } })).status, 200)
      }
      const res = await fetch(`${base}/logout-everywhere`, {
        method: 'POST', headers: { cookie: cookies[0] },
      })
      assert.deepEqual(await res.json(), { ended: 5 })
      for (const cookie of cookies) {
        assert.equal((await fetch(`${base}/me`, { headers: { cookie } })).status, 401)
      }
    } finally {
      await closeServer(server)
    }
  })

  it('is refused clearly when the index is off, and for a bad user id', async () => {
    const plain = new RedisStore({ url: server.url, secret: SECRET })
    try {
      await assert.rejects(plain.listUserSessions('u'), { code: 'ERR_USER_INDEX_OFF' })
      await assert.rejects(plain.destroyUserSessions('u'), /userIndex: true/)
    } finally {
      await plain.close()
    }
    await assert.rejects(ctx.store.listUserSessions(''),
      { name: 'TypeError', code: 'ERR_INVALID_ARG' })
    await assert.rejects(ctx.store.destroyUserSessions({}), /userId/)
    await assert.rejects(ctx.store.listUserSessions('a\nb'), { code: 'ERR_INVALID_ARG' })
  })

  it('refuses a userIndexPrefix whose keys could pass for session keys', () => {
    const overlaps = [['s:', 's:users:'], ['sess:', 'se'], ['u', undefined]]
    for (const [prefix, userIndexPrefix] of overlaps) {
      const options = { secret: SECRET, userIndex: true, prefix, userIndexPrefix }
      assert.throws(() => new RedisStore(options),
        { name: 'TypeError', code: 'ERR_INVALID_OPTION', message: /userIndexPrefix/ })
    }
  })

  it('a session without a user id, or one the index cannot name, is saved unindexed', async () => {
    await ctx.store.set('anonymous', { cookie: {} })
    await ctx.store.set('weird', { cookie: {}, userId: 'x'.repeat(300) })
    assert.notEqual(await ctx.store.get('weird'), null)
    const keys = []
    for await (const key of ctx.redis.scanIterator({ MATCH: `${INDEX}x*` })) keys.push(key)
    assert.deepEqual(keys.flat(), [])
  })

  it('numeric user ids index like their string form', async () => {
    await ctx.store.set('numeric', sessionOf(42))
    assert.deepEqual((await ctx.store.listUserSessions(42)).map((s) => s.sid), ['numeric'])
    assert.deepEqual((await ctx.store.listUserSessions('42')).map((s) => s.sid), ['numeric'])
  })
})

describe('the per-user index on a Redis Cluster', () => {
  const ctx = {}
  let cluster

  before(async () => {
    cluster = await RedisCluster.start({ primaries: 3, replicasPerPrimary: 0 })
    ctx.store = new RedisStore({ cluster: cluster.seeds, secret: SECRET, userIndex: true })
    await once(ctx.store, 'connect')
    ctx.redis = await clusterClient(cluster)
  })

  after(async () => {
    await ctx.redis?.quit()
    await ctx.store?.close()
    await cluster?.stop()
  })

  indexBehaviour(ctx)
})

/** A node-redis cluster client, for checking what the store wrote. */
async function clusterClient(cluster) {
  const { createCluster } = require('redis')
  const client = createCluster({ rootNodes: cluster.seeds.map((url) => ({ url })), RESP: 2 })
  client.on('error', () => {})
  await client.connect()
  return client
}
