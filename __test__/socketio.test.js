'use strict'

/**
 * Integration: a socket.io 4 server authenticating handshakes from the raw Cookie header
 * with `store.getSessionFromRawCookie`, the cookie coming from a real Express login.
 */

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const express = require('express')
const session = require('express-session')
const { Server } = require('socket.io')
const { io: connectClient } = require('socket.io-client')
const { RedisStore, sign } = require('..')
const { waitFor } = require('./helpers/events')
const { RedisServer } = require('./helpers/redis-server')

const SECRET = 'socket-secret'
const WAIT_MS = 5000

function makeApp(store) {
  const app = express()
  app.use(session({
    store,
    secret: SECRET,
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 60 * 60 * 1000, httpOnly: true },
  }))
  app.post('/login', async (req, res) => {
    await store.saveSession(req, 'user-42')
    res.json({ sid: req.sessionID })
  })
  return app
}

function attachIo(httpServer, store) {
  const io = new Server(httpServer)
  io.use(async (socket, next) => {
    let session
    try {
      session = await store.getSessionFromRawCookie(socket.handshake.headers.cookie)
    } catch (err) {
      return next(err)
    }
    if (!session || !session.userId) return next(new Error('unauthorized'))
    socket.data.userId = session.userId
    next()
  })
  io.on('connection', (socket) => {
    socket.on('whoami', (ack) => ack({ userId: socket.data.userId }))
  })
  return io
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server))
  })
}

/** POSTs /login and returns the `connect.sid=...` pair and the sid. */
async function login(base) {
  const res = await fetch(base + '/login', {
    method: 'POST',
    signal: AbortSignal.timeout(WAIT_MS),
  })
  assert.equal(res.status, 200)
  const line = res.headers.getSetCookie().find((c) => c.startsWith('connect.sid='))
  assert.ok(line, 'login must set a connect.sid cookie')
  const { sid } = await res.json()
  return { cookie: line.split(';')[0], sid }
}

describe('socket.io handshake authentication with RedisStore', () => {
  let redis
  let store
  let httpServer
  let io
  let base
  const clients = []

  function connect(cookie) {
    const extraHeaders = cookie === undefined ? {} : { cookie }
    const client = connectClient(base, {
      extraHeaders,
      transports: ['websocket'],
      reconnection: false,
      timeout: WAIT_MS,
    })
    clients.push(client)
    return client
  }

  async function expectRefused(cookie) {
    const client = connect(cookie)
    const { event, arg } = await waitFor(client, ['connect', 'connect_error'])
    client.close()
    assert.equal(event, 'connect_error', 'the handshake must be refused')
    assert.equal(arg.message, 'unauthorized')
  }

  before(async () => {
    redis = await RedisServer.start()
    store = new RedisStore({ url: redis.url, secret: SECRET })
    httpServer = http.createServer(makeApp(store))
    io = attachIo(httpServer, store)
    await listen(httpServer)
    base = `http://127.0.0.1:${httpServer.address().port}`
  })

  after(async () => {
    for (const client of clients) client.close()
    if (io) await new Promise((resolve) => io.close(() => resolve()))
    if (httpServer) {
      httpServer.closeAllConnections()
      await new Promise((resolve) => httpServer.close(() => resolve()))
    }
    if (store) await store.close()
    if (redis) await redis.stop()
  })

  it('a client with the login cookie connects and gets its userId back', async () => {
    const { cookie } = await login(base)
    const client = connect(cookie)
    const { event, arg } = await waitFor(client, ['connect', 'connect_error'])
    assert.equal(event, 'connect', `refused: ${arg && arg.message}`)
    const reply = await client.timeout(WAIT_MS).emitWithAck('whoami')
    assert.deepEqual(reply, { userId: 'user-42' })
    client.close()
  })

  it('a client with the cookie among others connects', async () => {
    const { cookie } = await login(base)
    const client = connect(`theme=dark; ${cookie}; lang=en`)
    const { event, arg } = await waitFor(client, ['connect', 'connect_error'])
    assert.equal(event, 'connect', `refused: ${arg && arg.message}`)
    const reply = await client.timeout(WAIT_MS).emitWithAck('whoami')
    assert.equal(reply.userId, 'user-42')
    client.close()
  })

  it('a client without a cookie is refused', async () => {
    await expectRefused(undefined)
  })

  it('a client with a badly signed cookie is refused', async () => {
    const { sid } = await login(base)
    const forged = 'connect.sid=' + encodeURIComponent('s:' + sign(sid, 'wrong-secret'))
    await expectRefused(forged)
  })

  it('a client with a garbage cookie is refused', async () => {
    await expectRefused('connect.sid=s%3Anot-a-session.nope')
  })

  it('a client whose session was destroyed is refused', async () => {
    const { cookie, sid } = await login(base)
    const ok = connect(cookie)
    const first = await waitFor(ok, ['connect', 'connect_error'])
    assert.equal(first.event, 'connect', 'the cookie must work before destroySession')
    ok.close()

    await store.destroySession(sid)
    await expectRefused(cookie)
  })
})
