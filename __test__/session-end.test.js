'use strict'

// Live revocation: two application instances (Express + socket.io, each with its own store)
// share one Redis; a session ended on one disconnects its sockets on the other.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const express = require('express')
const session = require('express-session')
const { Server } = require('socket.io')
const { io: connectClient } = require('socket.io-client')
const { RedisStore } = require('..')
const { waitFor } = require('./helpers/events')
const { closeServer, listen } = require('./helpers/http')
const { RedisCluster } = require('./helpers/redis-cluster')
const { RedisServer } = require('./helpers/redis-server')

const SECRET = 'revocation'
const WAIT_MS = 5000

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** One instance of the application: Express with sessions, and a socket.io gateway. */
async function startInstance(redisUrl, options = {}) {
  const store = new RedisStore({ url: redisUrl, secret: SECRET, userIndex: true, ...options })
  await once(store, 'connect')
  const app = express()
  app.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false }))
  app.post('/login/:user', async (req, res) => {
    await store.saveSession(req, req.params.user)
    res.end()
  })
  app.post('/logout', (req, res) => req.session.destroy(() => res.end()))
  app.post('/logout-everywhere', async (req, res) => {
    res.json({ ended: await store.destroyUserSessions(req.session.userId) })
  })

  const server = await listen(app)
  const io = new Server(server)
  io.use(async (socket, next) => {
    const userId = await store.getUserIdFromCookie(socket.request)
    next(userId ? undefined : new Error('unauthorized'))
  })
  const stop = store.closeSocketsOnSessionEnd(io)
  assert.equal(await store.sessionEndsReady(), true)
  const base = `http://127.0.0.1:${server.address().port}`
  return { store, server, io, base, stop }
}

async function stopInstance(instance) {
  if (!instance) return
  instance.stop()
  instance.io.close()
  await closeServer(instance.server)
  await instance.store.close()
}

async function login(base, user) {
  const res = await fetch(`${base}/login/${user}`, { method: 'POST' })
  assert.equal(res.status, 200)
  return res.headers.getSetCookie()[0].split(';')[0]
}

/** A socket.io client connected to `base` with `cookie`; resolves once connected. */
async function connectSocket(base, cookie) {
  const socket = connectClient(base, {
    transports: ['websocket'], extraHeaders: { cookie }, reconnection: false,
  })
  await Promise.race([
    once(socket, 'connect'),
    once(socket, 'connect_error').then(([err]) => {
      throw err
    }),
  ])
  return socket
}

/** Milliseconds until `socket` is disconnected by the server, failing after `ms`. */
async function disconnectedWithin(socket, ms) {
  const started = Date.now()
  const reason = await Promise.race([
    once(socket, 'disconnect').then(([why]) => why),
    sleep(ms).then(() => 'still connected'),
  ])
  assert.equal(reason, 'io server disconnect', `socket: ${reason}`)
  return Date.now() - started
}

describe('session ends reach every instance', () => {
  let redis
  let a
  let b
  const sockets = []

  before(async () => {
    redis = await RedisServer.start(['--notify-keyspace-events', 'Ex'])
    a = await startInstance(redis.url, { tombstoneTtl: 1 })
    b = await startInstance(redis.url, { tombstoneTtl: 1 })
  })

  after(async () => {
    for (const socket of sockets) socket.close()
    await stopInstance(a)
    await stopInstance(b)
    await redis?.stop()
  })

  it('a logout on instance A disconnects the socket held by B within a second', async () => {
    const cookie = await login(a.base, 'alice')
    const socket = await connectSocket(b.base, cookie)
    sockets.push(socket)
    const bystander = await connectSocket(b.base, await login(a.base, 'bob'))
    sockets.push(bystander)

    const disconnected = disconnectedWithin(socket, 1000)
    await fetch(`${a.base}/logout`, { method: 'POST', headers: { cookie } })
    const ms = await disconnected
    assert.ok(ms < 1000, `took ${ms} ms`)
    await sleep(100)
    assert.equal(bystander.connected, true, 'another session lost its socket')
  })

  it('log out everywhere disconnects the user\'s sockets on both instances', async () => {
    const cookies = [await login(a.base, 'carol'), await login(b.base, 'carol')]
    const onA = await connectSocket(a.base, cookies[0])
    const onB = await connectSocket(b.base, cookies[1])
    sockets.push(onA, onB)

    const both = Promise.all([disconnectedWithin(onA, 1000), disconnectedWithin(onB, 1000)])
    const res = await fetch(`${a.base}/logout-everywhere`, {
      method: 'POST', headers: { cookie: cookies[1] },
    })
    assert.deepEqual(await res.json(), { ended: 2 })
    await both
  })

  it('expiry is heard through keyspace notifications, once, not for the tombstone', async () => {
    const heard = []
    const off = b.store.onSessionEnd((end) => heard.push(end))
    try {
      const cookie = { originalMaxAge: 300, expires: new Date(Date.now() + 300) }
      await a.store.set('expiring', { cookie, userId: 'dave' })
      await a.store.set('destroyed', { cookie: {}, userId: 'dave' })
      await a.store.destroy('destroyed')
      // Redis expires idle keys within ~100 ms of their deadline; the tombstone lives 1 s.
      await sleep(2000)
      const mine = heard.filter((end) => end.sid === 'expiring' || end.sid === 'destroyed')
      assert.deepEqual(mine, [
        { sid: 'destroyed', reason: 'destroyed' },
        { sid: 'expiring', reason: 'expired' },
      ])
    } finally {
      off()
    }
  })

  it('a throwing listener is reported through `error` and does not stop the others', async () => {
    const errors = []
    const onError = (err) => errors.push(err)
    b.store.on('error', onError)
    const heard = []
    const offs = [
      b.store.onSessionEnd(() => {
        throw new Error('listener bug')
      }),
      b.store.onSessionEnd(async () => {
        throw new Error('async listener bug')
      }),
      b.store.onSessionEnd((end) => heard.push(end.sid)),
    ]
    try {
      await a.store.destroy('thrower')
      await sleep(300)
      assert.deepEqual(heard, ['thrower'])
      assert.deepEqual(errors.map((err) => err.message).sort(),
        ['async listener bug', 'listener bug'])
    } finally {
      offs.forEach((off) => off())
      b.store.off('error', onError)
    }
  })

  it('refuses what is not a listener or a socket.io server', () => {
    assert.throws(() => a.store.onSessionEnd('nope'), { code: 'ERR_INVALID_ARG' })
    assert.throws(() => a.store.closeSocketsOnSessionEnd({}), /socket\.io Server or Namespace/)
  })

  it('stopping closeSocketsOnSessionEnd leaves no listener on socket.io behind', () => {
    const counts = () => [a.io.listenerCount('new_namespace'),
      a.io.of('/').listenerCount('connection')]
    const before = counts()
    const stop = a.store.closeSocketsOnSessionEnd(a.io)
    assert.notDeepEqual(counts(), before)
    stop()
    assert.deepEqual(counts(), before)
  })
})

describe('session ends after Redis restarts, and on a cluster', () => {
  it('the subscription comes back by itself after Redis restarts', async () => {
    const redis = await RedisServer.start()
    const fast = { connectTimeout: 300, commandTimeout: 300 }
    const store = new RedisStore({ url: redis.url, secret: SECRET, ...fast })
    const other = new RedisStore({ url: redis.url, secret: SECRET })
    try {
      await Promise.all([once(store, 'connect'), once(other, 'connect')])
      const heard = []
      store.onSessionEnd((end) => heard.push(end.sid))
      assert.equal(await store.sessionEndsReady(), true)

      await redis.kill()
      assert.equal(await store.sessionEndsReady(), false, 'ready while Redis is down')
      // Listened for before the restart: the store may be back before restart() resolves.
      const back = waitFor(other, ['connect'], WAIT_MS)
      await redis.restart()
      await back
      assert.equal(await store.sessionEndsReady(), true, 'not ready again after the restart')
      const deadline = Date.now() + WAIT_MS
      while (!heard.includes('after-restart') && Date.now() < deadline) {
        await other.destroy('after-restart').catch(() => {})
        await sleep(200)
      }
      assert.ok(heard.includes('after-restart'), 'no end heard after the restart')
    } finally {
      await store.close()
      await other.close()
      await redis.stop()
    }
  })

  it('on a cluster, destroys and expiries on every primary are heard', async () => {
    const cluster = await RedisCluster.start({ primaries: 3, replicasPerPrimary: 0 })
    const options = { cluster: cluster.seeds, secret: SECRET }
    const store = new RedisStore(options)
    const other = new RedisStore(options)
    try {
      await Promise.all([once(store, 'connect'), once(other, 'connect')])
      await Promise.all(cluster.nodes.map(async (node) => {
        const client = await node.server.client()
        await client.configSet('notify-keyspace-events', 'Ex')
        await client.quit()
      }))
      const heard = []
      store.onSessionEnd((end) => heard.push(`${end.reason}:${end.sid}`))
      // Ready means every primary's subscription, not only the first one: no wait here.
      assert.equal(await store.sessionEndsReady(), true)

      const sids = Array.from({ length: 12 }, (_, i) => `spread-${i}`)
      const cookie = { originalMaxAge: 200, expires: new Date(Date.now() + 200) }
      await Promise.all(sids.map((sid) => other.set(sid, { cookie })))
      await Promise.all(sids.map((sid) => other.destroy(`${sid}-gone`)))
      await sleep(1500)

      for (const sid of sids) {
        assert.ok(heard.includes(`expired:${sid}`), `expiry of ${sid} not heard`)
        assert.ok(heard.includes(`destroyed:${sid}-gone`), `destroy of ${sid}-gone not heard`)
      }
      assert.equal(heard.length, sids.length * 2, 'an end was heard twice')
    } finally {
      await store.close()
      await other.close()
      await cluster.stop()
    }
  })
})
