'use strict'

// A logout racing with a request that loaded the session before it must not bring the
// session back: not through the Store API, and not through a real express-session app.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const express = require('express')
const session = require('express-session')
const { RedisStore } = require('..')
const { RedisServer } = require('./helpers/redis-server')

const RACES = 500
const sess = (extra) => ({ cookie: { originalMaxAge: 60_000 }, ...extra })

describe('logout races through the Store API', () => {
  let server
  let store
  let raw

  before(async () => {
    server = await RedisServer.start()
    raw = await server.client()
    store = new RedisStore({ url: server.url, secret: 's' })
    await once(store, 'connect')
  })

  after(async () => {
    await store.close()
    await raw.quit()
    await server.stop()
  })

  it(`a late set or touch after destroy resurrects none of ${RACES} sessions`, async () => {
    const sids = Array.from({ length: RACES }, (_, i) => `race-${i}`)
    await Promise.all(sids.map((sid) => store.set(sid, sess({ userId: sid }))))

    await Promise.all(sids.map(async (sid, i) => {
      const loaded = await store.get(sid)
      await jitter(i)
      await store.destroy(sid)
      await jitter(i + 1)
      loaded.cart = 'changed while logging out'
      await Promise.all([store.set(sid, loaded), store.touch(sid, loaded)])
    }))

    const survivors = (await Promise.all(sids.map((sid) => store.get(sid)))).filter(Boolean)
    assert.equal(survivors.length, 0)
  })

  it('tombstones are not sessions: length, ids and all skip them', async () => {
    await store.clear()
    await store.set('alive', sess({ v: 1 }))
    await store.set('dead', sess({ v: 2 }))
    await store.destroy('dead')
    assert.equal(await raw.type('session:dead'), 'hash')
    assert.equal(await store.length(), 1)
    assert.deepEqual(await store.ids(), ['alive'])
    assert.deepEqual((await store.all()).map((s) => s.id), ['alive'])
  })

  it('a tombstone expires after tombstoneTtl', async () => {
    const short = new RedisStore({ url: server.url, secret: 's', tombstoneTtl: 1 })
    await once(short, 'connect')
    await short.destroy('brief')
    const pttl = await raw.pTTL('session:brief')
    assert.ok(pttl > 0 && pttl <= 1000, `pttl ${pttl}`)
    await short.close()
  })

  it('a new sid is never blocked, and destroy of a missing session is fine', async () => {
    await store.destroy('old-sid')
    await store.set('new-sid', sess({ userId: 'u' }))
    assert.equal((await store.get('new-sid')).userId, 'u')
  })
})

describe('logout races through express-session', () => {
  let server
  let store
  let http
  let base
  let releaseSlow

  before(async () => {
    server = await RedisServer.start()
    store = new RedisStore({ url: server.url, secret: 's' })
    await once(store, 'connect')
    http = appWithSlowRoute(store, (release) => { releaseSlow = release }).listen(0)
    await once(http, 'listening')
    base = `http://127.0.0.1:${http.address().port}`
  })

  after(async () => {
    http.close()
    await store.close()
    await server.stop()
  })

  it('a slow request finishing after logout does not log the user back in', async () => {
    const login = await fetch(`${base}/login`, { method: 'POST' })
    const cookie = login.headers.get('set-cookie').split(';')[0]

    const slow = fetch(`${base}/slow`, { headers: { cookie } })
    await waitFor(() => releaseSlow !== undefined)
    const logout = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie } })
    assert.equal(logout.status, 204)
    releaseSlow()
    assert.equal((await slow).status, 200)

    const me = await fetch(`${base}/me`, { headers: { cookie } })
    assert.equal(me.status, 401)
  })
})

function appWithSlowRoute(store, onSlow) {
  const app = express()
  app.use(session({ store, secret: 's', resave: false, saveUninitialized: false }))
  app.post('/login', async (req, res) => {
    await store.saveSession(req, 'user-1')
    res.sendStatus(204)
  })
  app.get('/slow', (req, res) => {
    onSlow(() => {
      req.session.lastSeen = Date.now()
      res.sendStatus(200)
    })
  })
  app.post('/logout', (req, res) => req.session.destroy(() => res.sendStatus(204)))
  app.get('/me', (req, res) => res.sendStatus(req.session.userId ? 200 : 401))
  return app
}

function jitter(i) {
  return new Promise((resolve) => setTimeout(resolve, i % 3))
}

async function waitFor(check) {
  const deadline = Date.now() + 5000
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
