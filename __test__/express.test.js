'use strict'

/**
 * Integration: a real Express 5 app with express-session over real HTTP, backed by a
 * RedisStore on a throwaway redis-server.
 */

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const express = require('express')
const session = require('express-session')
const { RedisStore, sign } = require('..')
const { RESP_TYPES } = require('redis')
const { closeServer, listen } = require('./helpers/http')
const { RedisServer } = require('./helpers/redis-server')

const MAX_AGE = 10 * 60 * 1000
const REQUEST_TIMEOUT = 5000

function makeApp(store, secret) {
  const app = express()
  app.use(session({
    store,
    secret,
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: MAX_AGE, httpOnly: true, sameSite: 'strict' },
  }))
  app.get('/visit', (req, res) => {
    req.session.visits = (req.session.visits || 0) + 1
    res.json({ sid: req.sessionID, visits: req.session.visits })
  })
  app.post('/login', async (req, res) => {
    await store.saveSession(req, 'user-42')
    res.json({ sid: req.sessionID })
  })
  app.get('/me', (req, res) => {
    if (!req.session.userId) return res.status(401).json({ error: 'unauthorized' })
    res.json({ userId: req.session.userId })
  })
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ ok: true })))
  })
  return app
}

function baseUrl(server) {
  return `http://127.0.0.1:${server.address().port}`
}

/** `fetch` with a timeout; `cookie` is sent as the raw Cookie header when given. */
async function request(base, method, path, cookie) {
  const headers = cookie ? { cookie } : {}
  const res = await fetch(base + path, {
    method,
    headers,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT),
  })
  const body = await res.json()
  return { status: res.status, body, cookie: sessionCookie(res) }
}

/** The `connect.sid=...` pair from the response's Set-Cookie headers, or null. */
function sessionCookie(res) {
  const line = res.headers.getSetCookie().find((c) => c.startsWith('connect.sid='))
  return line ? line.split(';')[0] : null
}

function setCookieLine(res) {
  return res.headers.getSetCookie().find((c) => c.startsWith('connect.sid='))
}

/** The session id inside a `connect.sid=s%3A<sid>.<sig>` pair. */
function sidOf(cookie) {
  const value = decodeURIComponent(cookie.slice('connect.sid='.length))
  assert.ok(value.startsWith('s:'), `unexpected cookie value ${value}`)
  return value.slice(2, value.lastIndexOf('.'))
}

/** A cookie pair for `sid` signed with `secret`, as express-session would send it. */
function cookieFor(sid, secret) {
  return 'connect.sid=' + encodeURIComponent('s:' + sign(sid, secret))
}

/** The same cookie with one character of its signature changed. */
function alterSignature(cookie) {
  const value = decodeURIComponent(cookie.slice('connect.sid='.length))
  const dot = value.lastIndexOf('.')
  const sig = value.slice(dot + 1)
  const i = Math.floor(sig.length / 2)
  const swapped = sig[i] === 'A' ? 'B' : 'A'
  const altered = value.slice(0, dot + 1) + sig.slice(0, i) + swapped + sig.slice(i + 1)
  return 'connect.sid=' + encodeURIComponent(altered)
}

async function login(base, cookie) {
  const res = await request(base, 'POST', '/login', cookie)
  assert.equal(res.status, 200)
  assert.ok(res.cookie, 'login must set a connect.sid cookie')
  return res
}

describe('express-session with RedisStore over HTTP', () => {
  let redis
  let client
  let store
  let server
  let base

  before(async () => {
    redis = await RedisServer.start()
    client = await redis.client()
    store = new RedisStore({ url: redis.url, secret: 'old' })
    server = await listen(makeApp(store, 'old'))
    base = baseUrl(server)
  })

  after(async () => {
    await closeServer(server)
    if (store) await store.close()
    if (client) await client.close()
    if (redis) await redis.stop()
  })

  it('login sets a signed connect.sid cookie and /me answers with it', async () => {
    const res = await fetch(base + '/login', {
      method: 'POST',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT),
    })
    assert.equal(res.status, 200)
    const line = setCookieLine(res)
    assert.ok(line, 'no connect.sid Set-Cookie')
    assert.match(line, /HttpOnly/i)
    const { sid } = await res.json()
    const cookie = line.split(';')[0]
    assert.equal(sidOf(cookie), sid)
    assert.equal(cookie, cookieFor(sid, 'old'))

    const me = await request(base, 'GET', '/me', cookie)
    assert.equal(me.status, 200)
    assert.deepEqual(me.body, { userId: 'user-42' })
  })

  it('/me is protected: 401 without a cookie', async () => {
    const me = await request(base, 'GET', '/me')
    assert.equal(me.status, 401)
  })

  it('stores the session encrypted under session:<sid> with a TTL near maxAge', async () => {
    const { body, cookie } = await login(base)
    assert.equal(sidOf(cookie), body.sid)
    const key = `session:${body.sid}`
    assert.equal(await client.exists(key), 1)
    const raw = await client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).get(key)
    assert.ok(Buffer.isBuffer(raw) && raw.length > 0, 'stored value is empty')
    const text = raw.toString('latin1')
    assert.ok(!text.includes('user-42'), 'the userId is readable in Redis')
    assert.ok(!text.includes('userId'), 'the session JSON is readable in Redis')
    assert.ok(!text.includes('originalMaxAge'), 'the cookie JSON is readable in Redis')
    const pttl = await client.pTTL(key)
    assert.ok(pttl <= MAX_AGE, `PTTL ${pttl} exceeds maxAge ${MAX_AGE}`)
    assert.ok(pttl > MAX_AGE - 10000, `PTTL ${pttl} is far below maxAge ${MAX_AGE}`)
  })

  it('changes the session id at login and removes the anonymous session', async () => {
    const visit = await request(base, 'GET', '/visit')
    assert.equal(visit.status, 200)
    assert.ok(visit.cookie, '/visit must issue a cookie')
    const oldSid = sidOf(visit.cookie)
    assert.equal(oldSid, visit.body.sid)
    assert.equal(await client.exists(`session:${oldSid}`), 1)

    const again = await request(base, 'GET', '/visit', visit.cookie)
    assert.equal(again.body.visits, 2, 'the anonymous session did not persist')
    assert.equal(again.body.sid, oldSid)

    const { body, cookie } = await login(base, visit.cookie)
    const newSid = sidOf(cookie)
    assert.equal(newSid, body.sid)
    assert.notEqual(newSid, oldSid)
    assert.notEqual(await client.type(`session:${oldSid}`), 'string', 'old session in Redis')
    assert.equal(await client.exists(`session:${newSid}`), 1)

    const stale = await request(base, 'GET', '/me', visit.cookie)
    assert.equal(stale.status, 401, 'the pre-login cookie must not be logged in')
    const me = await request(base, 'GET', '/me', cookie)
    assert.deepEqual(me.body, { userId: 'user-42' })
  })

  it('logout removes the session: /me answers 401 with the old cookie', async () => {
    const { cookie } = await login(base)
    const sid = sidOf(cookie)
    assert.equal((await request(base, 'GET', '/me', cookie)).status, 200)

    const out = await request(base, 'POST', '/logout', cookie)
    assert.equal(out.status, 200)
    assert.notEqual(await client.type(`session:${sid}`), 'string', 'session still in Redis')
    const me = await request(base, 'GET', '/me', cookie)
    assert.equal(me.status, 401)
  })

  it('destroySession(sid) logs the cookie out', async () => {
    const { cookie } = await login(base)
    const sid = sidOf(cookie)
    await store.destroySession(sid)
    assert.notEqual(await client.type(`session:${sid}`), 'string')
    assert.equal((await request(base, 'GET', '/me', cookie)).status, 401)
  })

  describe('getUserIdFromCookie', () => {
    let cookie

    before(async () => {
      cookie = (await login(base)).cookie
    })

    it('returns the userId for the login cookie', async () => {
      assert.equal(await store.getUserIdFromCookie({ headers: { cookie } }), 'user-42')
    })

    it('finds the cookie among other cookies', async () => {
      const header = `theme=dark; ${cookie}; lang=en`
      assert.equal(await store.getUserIdFromCookie({ headers: { cookie: header } }), 'user-42')
    })

    it('returns null without a cookie', async () => {
      assert.equal(await store.getUserIdFromCookie({ headers: {} }), null)
      assert.equal(await store.getUserIdFromCookie({ headers: { cookie: '' } }), null)
      assert.equal(await store.getUserIdFromCookie({ headers: { cookie: 'a=b' } }), null)
    })

    it('returns null for a garbage cookie', async () => {
      for (const garbage of ['connect.sid=garbage', 'connect.sid=s%3A', 'connect.sid=%%%',
        'connect.sid=s%3Aabc.def', ';;;==;', 'connect.sid']) {
        const got = await store.getUserIdFromCookie({ headers: { cookie: garbage } })
        assert.equal(got, null, `cookie ${JSON.stringify(garbage)}`)
      }
    })

    it('returns null for a cookie whose signature was altered', async () => {
      const altered = alterSignature(cookie)
      assert.notEqual(altered, cookie)
      assert.equal(await store.getUserIdFromCookie({ headers: { cookie: altered } }), null)
    })

    it('returns null for an unsigned sid', async () => {
      const unsigned = 'connect.sid=' + encodeURIComponent('s:' + sidOf(cookie))
      assert.equal(await store.getUserIdFromCookie({ headers: { cookie: unsigned } }), null)
    })
  })

  describe('secret rotation', () => {
    let rotatedStore
    let rotatedServer
    let rotatedBase

    before(async () => {
      rotatedStore = new RedisStore({ url: redis.url, secret: ['new', 'old'] })
      rotatedServer = await listen(makeApp(rotatedStore, ['new', 'old']))
      rotatedBase = baseUrl(rotatedServer)
    })

    after(async () => {
      await closeServer(rotatedServer)
      if (rotatedStore) await rotatedStore.close()
    })

    it('a session made with secret "old" works with ["new", "old"]', async () => {
      const { cookie } = await login(base)
      assert.equal(cookie, cookieFor(sidOf(cookie), 'old'))
      const me = await request(rotatedBase, 'GET', '/me', cookie)
      assert.equal(me.status, 200)
      assert.deepEqual(me.body, { userId: 'user-42' })
      const userId = await rotatedStore.getUserIdFromCookie({ headers: { cookie } })
      assert.equal(userId, 'user-42')
    })

    it('new logins are signed with the first secret', async () => {
      const { cookie } = await login(rotatedBase)
      assert.equal(cookie, cookieFor(sidOf(cookie), 'new'))
      const me = await request(rotatedBase, 'GET', '/me', cookie)
      assert.deepEqual(me.body, { userId: 'user-42' })
      const userId = await rotatedStore.getUserIdFromCookie({ headers: { cookie } })
      assert.equal(userId, 'user-42')
    })

    it('a cookie signed with an unknown secret is refused', async () => {
      const { cookie } = await login(base)
      const forged = cookieFor(sidOf(cookie), 'unknown')
      const me = await request(rotatedBase, 'GET', '/me', forged)
      assert.equal(me.status, 401)
      const userId = await rotatedStore.getUserIdFromCookie({ headers: { cookie: forged } })
      assert.equal(userId, null)
      assert.equal((await request(rotatedBase, 'GET', '/me', cookie)).status, 200)
    })
  })
})
