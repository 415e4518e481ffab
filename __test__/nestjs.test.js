'use strict'

/**
 * Integration: the NestJS example (examples/nestjs), built with tsc, booted on a free port
 * over a throwaway Redis, driven by real HTTP (fetch) and real socket.io clients.
 */

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { promisify } = require('node:util')
const { io: connectClient } = require('socket.io-client')
const { waitFor } = require('./helpers/events')
const { RedisServer, waitUntil } = require('./helpers/redis-server')

const ROOT = path.join(__dirname, '..')
const MAIN = path.join(ROOT, 'examples', 'nestjs', 'dist', 'main.js')
const WAIT_MS = 5000
const BUILD_MS = 120_000

/** `npm run build:example`; returns how long it took, in ms. */
async function buildExample() {
  const started = Date.now()
  await promisify(execFile)('npm', ['run', '--silent', 'build:example'], {
    cwd: ROOT,
    timeout: BUILD_MS,
  })
  return Date.now() - started
}

/** Boots the built example on a free port against `redisUrl`. */
async function bootExample(redisUrl) {
  process.env.REDIS_URL = redisUrl
  process.env.SESSION_SECRET = 'nestjs-test-secret'
  const { bootstrap } = require(MAIN)
  const app = await bootstrap(0, { logger: ['error', 'warn'], abortOnError: false })
  const { port } = app.getHttpServer().address()
  return { app, base: `http://127.0.0.1:${port}` }
}

/** An HTTP request whose body is always read: `{ status, headers, body }` (JSON or text). */
async function request(base, method, url, { cookie, body } = {}) {
  const headers = {}
  if (cookie) headers.cookie = cookie
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(base + url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  })
  const text = await res.text()
  const json = /json/.test(res.headers.get('content-type'))
  return { status: res.status, headers: res.headers, body: json ? JSON.parse(text) : text }
}

/** POST /auth/login; returns the `connect.sid=...` pair of its Set-Cookie. */
async function login(base, userId) {
  const res = await request(base, 'POST', '/auth/login', { body: { userId } })
  assert.equal(res.status, 200)
  assert.deepEqual(res.body, { userId })
  const line = res.headers.getSetCookie().find((c) => c.startsWith('connect.sid='))
  assert.ok(line, 'login must set a connect.sid cookie')
  assert.match(line, /HttpOnly/i)
  assert.match(line, /SameSite=Lax/i)
  return line.split(';')[0]
}

describe('NestJS example: HTTP login and socket.io gateway over RedisStore', () => {
  let redis
  let app
  let base
  let buildMs
  const clients = []

  /** A socket.io client; `events` lists what it saw, in order ('disconnect:<reason>'). */
  function connect(cookie) {
    const client = connectClient(base, {
      extraHeaders: cookie === undefined ? {} : { cookie },
      transports: ['websocket'],
      reconnection: false,
      timeout: WAIT_MS,
    })
    clients.push(client)
    const events = []
    client.onAny((event) => events.push(event))
    client.on('connect', () => events.push('connect'))
    client.on('connect_error', () => events.push('connect_error'))
    client.on('disconnect', (reason) => events.push(`disconnect:${reason}`))
    return { client, events }
  }

  /** Connects with `cookie` and waits until the gateway admits it. */
  async function connectAs(cookie) {
    const socket = connect(cookie)
    const { event, arg } = await waitFor(socket.client, ['authenticated', 'unauthorized'])
    assert.equal(event, 'authenticated', 'the gateway must admit the socket')
    return { ...socket, userId: arg.userId }
  }

  /** Connects with `cookie`: the gateway must say 'unauthorized', then disconnect it. */
  async function expectRefused(cookie) {
    const { client, events } = connect(cookie)
    await expectDropped({ client, events })
    assert.ok(!events.includes('authenticated'), `admitted: ${events}`)
  }

  async function expectDropped({ client, events }) {
    await waitUntil(() => events.some((e) => e.startsWith('disconnect')), WAIT_MS,
      `not disconnected within ${WAIT_MS} ms (saw ${events})`)
    assert.deepEqual(events.slice(-2), ['unauthorized', 'disconnect:io server disconnect'])
    assert.equal(client.connected, false)
  }

  before(async () => {
    buildMs = await buildExample()
    redis = await RedisServer.start()
    ;({ app, base } = await bootExample(redis.url))
  }, { timeout: BUILD_MS + 30_000 })

  after(async () => {
    for (const client of clients) client.close()
    if (app) await app.close()
    if (redis) await redis.stop()
  })

  it('the example builds with tsc and serves its page', async (t) => {
    t.diagnostic(`npm run build:example took ${buildMs} ms`)
    const res = await request(base, 'GET', '/')
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type'), /^text\/html/)
    assert.match(res.body, /<script src="\/socket\.io\/socket\.io\.js"><\/script>/)
    const client = await request(base, 'GET', '/socket.io/socket.io.js')
    assert.equal(client.status, 200, 'socket.io must serve its browser client')
    assert.match(client.body, /Socket\.IO v4/)
  })

  it('GET /auth/me is 401 without a session', async () => {
    const res = await request(base, 'GET', '/auth/me')
    assert.equal(res.status, 401)
    assert.equal(res.headers.getSetCookie().length, 0, 'no session for anonymous requests')
  })

  it('POST /auth/login refuses a missing or malformed userId', async () => {
    for (const body of [{}, { userId: '' }, { userId: 42 }, { userId: 'a b' }]) {
      const res = await request(base, 'POST', '/auth/login', { body })
      assert.equal(res.status, 400, `body ${JSON.stringify(body)}`)
    }
  })

  it('login sets the session cookie and /auth/me returns the user', async () => {
    const cookie = await login(base, 'student-17')
    const res = await request(base, 'GET', '/auth/me', { cookie })
    assert.equal(res.status, 200)
    assert.deepEqual(res.body, { userId: 'student-17' })
  })

  it('a socket with the cookie is admitted and whoami returns the userId', async () => {
    const cookie = await login(base, 'student-18')
    const { client, userId } = await connectAs(cookie)
    assert.equal(userId, 'student-18')
    const reply = await client.timeout(WAIT_MS).emitWithAck('whoami')
    assert.deepEqual(reply, { userId: 'student-18' })
    client.close()
  })

  it('a socket without cookie gets unauthorized and is disconnected', async () => {
    await expectRefused(undefined)
  })

  it('a socket with a forged cookie gets unauthorized and is disconnected', async () => {
    await expectRefused('connect.sid=s%3Aforged-session-id.bad-signature')
  })

  it('logout: /auth/me is 401, live sockets drop, the old cookie is refused', async () => {
    const cookie = await login(base, 'student-19')
    const other = await login(base, 'student-19') // the same user in another browser
    const live = await connectAs(cookie)
    const { client: elsewhere } = await connectAs(other)

    const res = await request(base, 'POST', '/auth/logout', { cookie })
    assert.equal(res.status, 204)
    const cleared = res.headers.getSetCookie().find((c) => c.startsWith('connect.sid=;'))
    assert.ok(cleared, 'logout must clear the cookie')
    await expectDropped(live)

    assert.equal((await request(base, 'GET', '/auth/me', { cookie })).status, 401)
    await expectRefused(cookie)

    assert.equal(elsewhere.connected, true, 'the other session keeps its socket')
    const reply = await elsewhere.timeout(WAIT_MS).emitWithAck('whoami')
    assert.deepEqual(reply, { userId: 'student-19' })
    const me = await request(base, 'GET', '/auth/me', { cookie: other })
    assert.deepEqual([me.status, me.body], [200, { userId: 'student-19' }])
  })

  it('app.close() closes the store (onApplicationShutdown)', async () => {
    const { RedisStore } = require('..')
    const store = app.get(RedisStore)
    assert.ok(store instanceof RedisStore, 'the store is a Nest provider')
    await app.close()
    app = null
    await assert.rejects(store.get('any-sid'), { code: 'ERR_CLOSED' })
  })
})
