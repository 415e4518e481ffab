'use strict'

// Migration from connect-redis: sessions that the real connect-redis wrote in plaintext keep
// their users logged in with `legacyPrefix`, and each is sealed on its next write.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const express = require('express')
const session = require('express-session')
const { RedisStore } = require('..')
const { closeServer, listen } = require('./helpers/http')
const { RedisServer } = require('./helpers/redis-server')

const SECRET = 'migrating'
const ENVELOPE_VERSION = 0x01

/** The bytes stored at `key`. */
async function rawBuffer(raw, key) {
  return Buffer.from(await raw.withTypeMapping({ [36]: Buffer }).get(key))
}

/** An app whose sessions live in `store`: login, a page that reads, one that writes. */
function makeApp(store) {
  const app = express()
  app.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false }))
  app.post('/login/:user', (req, res) => {
    req.session.userId = req.params.user
    req.session.cart = ['book']
    res.end()
  })
  app.get('/me', (req, res) => res.status(req.session.userId ? 200 : 401)
    .json({ userId: req.session.userId, cart: req.session.cart }))
  app.post('/cart/:item', (req, res) => {
    req.session.cart.push(req.params.item)
    res.end()
  })
  app.post('/logout', (req, res) => req.session.destroy(() => res.end()))
  return app
}

async function serve(store) {
  const server = await listen(makeApp(store))
  return { server, base: `http://127.0.0.1:${server.address().port}` }
}

async function logIn(base, user) {
  const res = await fetch(`${base}/login/${user}`, { method: 'POST' })
  assert.equal(res.status, 200)
  const cookie = res.headers.getSetCookie()[0].split(';')[0]
  const sid = decodeURIComponent(cookie.split('=')[1]).slice(2).split('.')[0]
  return { cookie, sid }
}

/** Logs `users` in through an app backed by the real connect-redis (latest, node-redis). */
async function logInWithConnectRedis(url, users) {
  const { RedisStore: ConnectRedis } = await import('connect-redis')
  const { createClient } = require('redis')
  const client = createClient({ url })
  await client.connect()
  const { server, base } = await serve(new ConnectRedis({ client }))
  try {
    const out = {}
    for (const user of users) out[user] = await logIn(base, user)
    return out
  } finally {
    await closeServer(server)
    await client.quit()
  }
}

describe('migrating from connect-redis with legacyPrefix', () => {
  let redis
  let raw
  let store
  let app
  let logins

  before(async () => {
    redis = await RedisServer.start()
    raw = await redis.client()
    logins = await logInWithConnectRedis(redis.url, ['ann', 'ben', 'cy', 'dee'])
    store = new RedisStore({ url: redis.url, secret: SECRET, legacyPrefix: 'sess:' })
    await once(store, 'connect')
    app = await serve(store)
  })

  after(async () => {
    await closeServer(app?.server)
    await store?.close()
    await raw?.quit()
    await redis?.stop()
  })

  it('connect-redis stored plaintext JSON under sess:', async () => {
    const stored = await raw.get(`sess:${logins.ann.sid}`)
    assert.equal(JSON.parse(stored).userId, 'ann')
  })

  it('keeps connect-redis users logged in, and counts the legacy reads', async () => {
    const res = await fetch(`${app.base}/me`, { headers: { cookie: logins.ann.cookie } })
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { userId: 'ann', cart: ['book'] })
    assert.ok(store.stats().legacy >= 1)
  })

  it('seals a session on its next write and removes the plaintext copy', async () => {
    const { cookie, sid } = logins.ben
    const ttlBefore = await raw.pTTL(`sess:${sid}`)
    assert.ok(ttlBefore > 0)
    await fetch(`${app.base}/cart/pen`, { method: 'POST', headers: { cookie } })

    assert.equal(await raw.exists(`sess:${sid}`), 0, 'the plaintext copy is still there')
    const sealed = await rawBuffer(raw, `session:${sid}`)
    assert.equal(sealed[0], ENVELOPE_VERSION)
    assert.ok(!sealed.includes(Buffer.from('ben')), 'the sealed value shows the user id')

    const legacyBefore = store.stats().legacy
    const res = await fetch(`${app.base}/me`, { headers: { cookie } })
    assert.deepEqual(await res.json(), { userId: 'ben', cart: ['book', 'pen'] })
    assert.equal(store.stats().legacy, legacyBefore, 'read the legacy copy after migrating')
  })

  it('touch renews a session not migrated yet where it is', async () => {
    const { sid } = logins.cy
    await raw.pExpire(`sess:${sid}`, 60_000)
    const legacy = await store.get(sid)
    await store.touch(sid, legacy)
    const ttl = await raw.pTTL(`sess:${sid}`)
    assert.ok(ttl > 60_000, `ttl ${ttl}`)
  })

  it('a logout also removes the plaintext copy, so it cannot come back', async () => {
    const { cookie, sid } = logins.dee
    await fetch(`${app.base}/logout`, { method: 'POST', headers: { cookie } })
    assert.equal(await raw.exists(`sess:${sid}`), 0)
    assert.equal((await fetch(`${app.base}/me`, { headers: { cookie } })).status, 401)
  })

  it('without legacyPrefix, plaintext sessions are not read', async () => {
    const strict = new RedisStore({ url: redis.url, secret: SECRET })
    try {
      assert.equal(await strict.get(logins.ann.sid), null)
    } finally {
      await strict.close()
    }
  })

  it('refuses an empty legacyPrefix', () => {
    assert.throws(() => new RedisStore({ secret: SECRET, legacyPrefix: '' }),
      { name: 'TypeError', code: 'ERR_INVALID_OPTION', message: /legacyPrefix/ })
  })
})

describe('migrating in place: connect-redis 8 (ioredis) and the same prefix', () => {
  it('reads plaintext at its own keys and seals them on write', async () => {
    const redis = await RedisServer.start()
    const raw = await redis.client()
    const Redis = require('ioredis')
    const { RedisStore: ConnectRedis8 } = require('connect-redis-8')
    const ioredis = new Redis(redis.url)
    const legacy = new ConnectRedis8({ client: ioredis, prefix: 'app:' })
    const store = new RedisStore({
      url: redis.url, secret: SECRET, prefix: 'app:', legacyPrefix: 'app:',
    })
    const connected = once(store, 'connect')
    try {
      const cookie = { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) }
      await new Promise((resolve, reject) => legacy.set('in-place', { cookie, userId: 'eve' },
        (err) => (err ? reject(err) : resolve())))
      await connected

      const loaded = await store.get('in-place')
      assert.equal(loaded.userId, 'eve')
      await store.set('in-place', loaded)
      const sealed = await rawBuffer(raw, 'app:in-place')
      assert.equal(sealed[0], ENVELOPE_VERSION, 'still plaintext after a write')
      assert.equal((await store.get('in-place')).userId, 'eve')
    } finally {
      await store.close()
      ioredis.disconnect()
      await raw.quit()
      await redis.stop()
    }
  })
})

describe('log out everywhere while migrating', () => {
  let redis
  let raw

  before(async () => {
    redis = await RedisServer.start()
    raw = await redis.client()
  })

  after(async () => {
    await raw?.quit()
    await redis?.stop()
  })

  for (const [layout, options] of [
    ['its own prefix', { legacyPrefix: 'sess:' }],
    ['the same prefix', { prefix: 'sess:', legacyPrefix: 'sess:' }],
  ]) {
    it(`ends plaintext sessions not sealed yet, with ${layout}`, async () => {
      const first = await logInWithConnectRedis(redis.url, ['fay'])
      const second = await logInWithConnectRedis(redis.url, ['fay'])
      const sessions = [first.fay, second.fay]
      for (const { sid } of sessions) assert.equal(await raw.exists(`sess:${sid}`), 1)

      const store = new RedisStore({ url: redis.url, secret: SECRET, userIndex: true, ...options })
      await once(store, 'connect')
      const app = await serve(store)
      try {
        // A read that modifies nothing: express-session only touches, so they stay plaintext.
        for (const { cookie } of sessions) {
          const res = await fetch(`${app.base}/me`, { headers: { cookie } })
          assert.equal(res.status, 200)
        }
        const listed = (await store.listUserSessions('fay')).map((s) => s.sid).sort()
        assert.deepEqual(listed, sessions.map((s) => s.sid).sort())

        assert.equal(await store.destroyUserSessions('fay'), 2)

        for (const { cookie, sid } of sessions) {
          const res = await fetch(`${app.base}/me`, { headers: { cookie } })
          assert.equal(res.status, 401, 'a plaintext session outlived log out everywhere')
          assert.equal(await store.get(sid), null)
        }
        assert.deepEqual(await store.listUserSessions('fay'), [])
      } finally {
        await closeServer(app.server)
        await store.close()
      }
    })
  }
})
