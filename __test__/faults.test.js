'use strict'

// Fault injection under concurrent load: redis-server killed and restarted, paused with
// CLIENT PAUSE and DEBUG SLEEP, an Express app through an outage, and memory through a long
// outage. Every call must settle within the command timeout (plus a margin), never hang.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { setTimeout: sleep } = require('node:timers/promises')
const express = require('express')
const session = require('express-session')
const { RedisStore } = require('..')
const { closeServer, listen } = require('./helpers/http')
const { RedisServer } = require('./helpers/redis-server')

const SECRET = 'faults-secret'
const COMMAND_TIMEOUT = 1000
const SETTLE_BOUND = 1500
const EVENT_BOUND = 1000
const LOOPS = 64
const PAUSE_MS = 3000
const RECOVERY_BOUND = 3000
const REQUEST_TIMEOUT = 5000
const MEMORY_TIMEOUT = 250
const OUTAGE_MS = 30000
const MB = 1024 * 1024

const unhandledRejections = []
const uncaughtExceptions = []
process.on('unhandledRejection', (reason) => unhandledRejections.push(reason))
process.on('uncaughtException', (err) => uncaughtExceptions.push(err))

const payload = (extra) => ({ cookie: { originalMaxAge: null }, ...extra })

const OPERATIONS = {
  set: (store, sid) => store.set(sid, payload({ sid })),
  get: (store, sid) => store.get(sid),
  touch: (store, sid) => store.touch(sid, payload({ sid })),
  destroy: (store, sid) => store.destroy(sid),
}

// ---------------------------------------------------------------------------------------
// Helpers: timeouts, store events, load loops

/** `promise`, or a rejection naming `label` after `ms`. */
async function withTimeout(promise, ms, label) {
  let timer
  const limit = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: not settled within ${ms} ms`)), ms)
  })

  try {
    return await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
}

/** A store on `server` whose `connect`/`disconnect` events are recorded with their time. */
async function openStore(server, options = {}) {
  const store = new RedisStore({
    url: server.url, secret: SECRET, commandTimeout: COMMAND_TIMEOUT, ...options,
  })
  const events = []
  store.on('connect', () => events.push({ name: 'connect', at: Date.now() }))
  store.on('disconnect', () => events.push({ name: 'disconnect', at: Date.now() }))

  await nextEvent(events, 'connect', 0, 5000)
  return { store, events }
}

/** The first `name` event recorded at index `from` or later, waiting at most `ms`. */
async function nextEvent(events, name, from, ms) {
  const deadline = Date.now() + ms
  while (Date.now() <= deadline) {
    const found = events.slice(from).find((event) => event.name === name)
    if (found) return found
    await sleep(5)
  }
  throw new Error(`no ${name} event within ${ms} ms`)
}

async function closeStore(store) {
  if (store) await withTimeout(store.close(), 5000, 'store.close()')
}

/** Counters of a load run; `phase` labels the calls started from now on. */
function newStats(bound) {
  return {
    bound, phase: 'start', byPhase: {}, worst: 0, worstOp: null, inFlight: 0,
    maxInFlight: 0, started: 0, settled: 0, late: [], badErrors: [],
  }
}

/** `loops` concurrent loops, each awaiting one store call at a time, until stopped. */
function runLoad(store, stats, { loops = LOOPS, ops = Object.keys(OPERATIONS), tag = 'l' } = {}) {
  const state = { stopped: false }
  const runs = []
  for (let i = 0; i < loops; i++) runs.push(runLoop(store, stats, state, ops, `${tag}${i}`))
  const done = Promise.all(runs)

  return {
    async stop() {
      state.stopped = true
      await withTimeout(done, stats.bound + 500, `load (${stats.inFlight} calls pending)`)
    },
  }
}

async function runLoop(store, stats, state, ops, name) {
  for (let n = 0; !state.stopped; n++) {
    const op = ops[n % ops.length]
    const sid = `${name}-${Math.floor(n / ops.length)}`
    await timedCall(stats, op, () => OPERATIONS[op](store, sid))
  }
}

/** Runs one call, counting it in flight until it settles, and records how it settled. */
async function timedCall(stats, op, call) {
  const phase = stats.phase
  const started = Date.now()
  stats.started++
  stats.inFlight++
  stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight)

  let error = null
  try {
    await call()
  } catch (err) {
    error = err
  }

  stats.inFlight--
  stats.settled++
  note(stats, { op, phase, ms: Date.now() - started, error })
}

function note(stats, { op, phase, ms, error }) {
  stats.byPhase[phase] ??= { ok: 0, failed: 0, codes: {} }
  const counts = stats.byPhase[phase]
  if (ms > stats.worst) {
    stats.worst = ms
    stats.worstOp = `${op} (${phase})`
  }
  if (ms > stats.bound && stats.late.length < 20) stats.late.push({ op, phase, ms })
  if (error === null) {
    counts.ok++
    return
  }

  counts.failed++
  const code = error && error.code
  counts.codes[code] = (counts.codes[code] || 0) + 1
  const coded = error instanceof Error && /^ERR_REDIS/.test(String(code))
  if (!coded && stats.badErrors.length < 20) stats.badErrors.push(error)
}

/** Every recorded call settled within the bound, and every failure was a coded Error. */
function assertSettledWell(stats) {
  assert.deepEqual(stats.late, [], `calls slower than ${stats.bound} ms`)
  assert.deepEqual(stats.badErrors, [], 'rejections that are not ERR_REDIS* Errors')
}

function summary(stats) {
  const phases = Object.entries(stats.byPhase)
    .map(([phase, c]) => `${phase}: ${c.ok} ok, ${c.failed} failed ${JSON.stringify(c.codes)}`)
  return `${stats.settled} calls, worst ${stats.worst} ms [${stats.worstOp}]; ` +
    phases.join('; ')
}

// ---------------------------------------------------------------------------------------
// 1. Kill and restart under load

function killAndRestart({ listener, stopBeforeRestart }) {
  const stats = newStats(SETTLE_BOUND)
  const emitted = []
  let server
  let store
  let events
  let load = null

  before(async () => {
    server = await RedisServer.start()
    const opened = await openStore(server)
    store = opened.store
    events = opened.events
    if (listener) store.on('error', (err) => emitted.push(err))
  })

  after(async () => {
    if (load) await load.stop().catch(() => {})
    await closeStore(store)
    if (server) await server.stop()
  })

  it('emits disconnect within 1 s of a SIGKILL under load', { timeout: 10000 }, async (t) => {
    load = runLoad(store, stats)
    await sleep(300)
    assert.ok(stats.byPhase.start?.ok > 0, 'the load did not reach Redis before the kill')

    stats.phase = 'killed'
    const from = events.length
    const killedAt = Date.now()
    await server.kill()
    const lost = await nextEvent(events, 'disconnect', from, 3000)
    stats.phase = 'down'

    t.diagnostic(`disconnect ${lost.at - killedAt} ms after the kill`)
    assert.ok(lost.at - killedAt <= EVENT_BOUND, `disconnect ${lost.at - killedAt} ms late`)
  })

  it('settles every call of the outage within 1500 ms, as ERR_REDIS* Errors',
    { timeout: 10000 }, async (t) => {
      await sleep(1000)
      await untilSettled(stats, 'down', LOOPS, SETTLE_BOUND + 1000)
      if (stopBeforeRestart) await stopLoad()

      const down = stats.byPhase.down
      t.diagnostic(summary(stats))
      assert.ok(down && down.failed > 0, 'no call failed while Redis was dead')
      assert.equal(down.ok, 0, 'a call succeeded while Redis was dead')
      assertSettledWell(stats)
    })

  const how = stopBeforeRestart ? 'with no call at all' : 'under load'
  it(`emits connect within 1 s of the server answering again, ${how}`,
    { timeout: 10000 }, async (t) => {
      const startedBefore = stats.started
      stats.phase = 'restarting'
      const from = events.length
      const restartedAt = Date.now()
      await server.restart()
      const back = await nextEvent(events, 'connect', from, 3000)

      // restartedAt precedes the first answer: this over-estimates the latency.
      t.diagnostic(`connect ${back.at - restartedAt} ms after restart() was called`)
      assert.ok(back.at - restartedAt <= EVENT_BOUND, `connect ${back.at - restartedAt} ms late`)
      if (stopBeforeRestart) assert.equal(stats.started, startedBefore, 'a call was made')
    })

  it('serves calls again after recovery', { timeout: 10000 }, async (t) => {
    stats.phase = 'recovered'
    load ??= runLoad(store, stats, { tag: 'r' })
    await sleep(700)
    await stopLoad()

    const recovered = stats.byPhase.recovered
    t.diagnostic(summary(stats))
    assert.ok(recovered && recovered.ok > 0, 'no call succeeded after recovery')
    assert.equal(recovered.failed, 0, `failures after recovery: ${JSON.stringify(recovered)}`)
    assertSettledWell(stats)
    assert.ok(stats.maxInFlight <= LOOPS)
    assertNoStrayErrors(t, listener, emitted)
  })

  async function stopLoad() {
    const current = load
    load = null
    await current.stop()
    assert.equal(stats.inFlight, 0, 'calls still pending after the load stopped')
  }
}

/** Waits (bounded) until `count` calls started in `phase` have settled. */
async function untilSettled(stats, phase, count, ms) {
  const deadline = Date.now() + ms
  const settled = () => (stats.byPhase[phase]?.ok ?? 0) + (stats.byPhase[phase]?.failed ?? 0)
  while (settled() < count && Date.now() < deadline) await sleep(10)
  assert.ok(settled() >= count, `${settled()} of ${count} '${phase}' calls settled in ${ms} ms`)
}

function assertNoStrayErrors(t, listener, emitted) {
  if (listener) {
    t.diagnostic(`error events: ${emitted.length}`)
    for (const err of emitted) {
      assert.ok(err instanceof Error && typeof err.code === 'string', `bad error event ${err}`)
    }
  }
  assert.deepEqual(uncaughtExceptions, [], 'uncaught exceptions')
  assert.deepEqual(unhandledRejections, [], 'unhandled rejections')
}

describe('kill and restart under load, with an error listener', () => {
  killAndRestart({ listener: true, stopBeforeRestart: true })
})

describe('kill and restart under load, without an error listener', () => {
  killAndRestart({ listener: false, stopBeforeRestart: false })
})

// ---------------------------------------------------------------------------------------
// 2. A paused server

describe('a paused server', () => {
  let server
  let admin
  let store

  before(async () => {
    server = await RedisServer.start(['--enable-debug-command', 'yes'])
    admin = await server.client()
    store = (await openStore(server)).store
  })

  after(async () => {
    await closeStore(store)
    if (admin) await withTimeout(admin.close(), 5000, 'admin client close').catch(() => {})
    if (server) await server.stop()
  })

  it('CLIENT PAUSE 3000 ALL: calls settle in time, the store works after',
    { timeout: 15000 }, async (t) => {
      await pauseUnderLoad(t, store, async () => {
        const reply = await admin.sendCommand(['CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL'])
        assert.equal(reply, 'OK')
      })
    })

  it('DEBUG SLEEP 3: calls settle in time, the store works after',
    { timeout: 15000 }, async (t) => {
      let sleeping
      await pauseUnderLoad(t, store, async () => {
        sleeping = admin.sendCommand(['DEBUG', 'SLEEP', String(PAUSE_MS / 1000)])
      })
      assert.equal(await withTimeout(sleeping, 3000, 'DEBUG SLEEP reply'), 'OK')
    })
})

/** Load, then `pause()` the server for PAUSE_MS; checks the calls and the recovery. */
async function pauseUnderLoad(t, store, pause) {
  const stats = newStats(SETTLE_BOUND)
  const load = runLoad(store, stats)
  await sleep(200)
  assert.ok(stats.byPhase.start?.ok > 0, 'the load did not reach Redis before the pause')

  stats.phase = 'paused'
  const pausedAt = Date.now()
  await pause()
  await sleep(Math.max(0, pausedAt + PAUSE_MS - Date.now()))
  stats.phase = 'after pause'
  await load.stop()

  const recovery = await timeToWork(store, pausedAt + PAUSE_MS)
  t.diagnostic(summary(stats))
  t.diagnostic(`works again ${recovery} ms after the pause ended`)
  assert.equal(stats.inFlight, 0)
  assert.ok(stats.byPhase.paused?.failed > 0, 'no call failed during a 3 s pause')
  assertSettledWell(stats)
  assert.ok(recovery <= RECOVERY_BOUND, `store still failing ${recovery} ms after the pause`)
}

/** Milliseconds from `since` until a set and get round-trip works (polled, bounded). */
async function timeToWork(store, since) {
  const deadline = since + RECOVERY_BOUND + 2000
  for (let n = 0; Date.now() < deadline; n++) {
    const sid = `probe-${since}-${n}`
    const ok = await store.set(sid, payload({ n }))
      .then(() => store.get(sid))
      .then((read) => read && read.n === n, () => false)
    if (ok) return Date.now() - since
    await sleep(50)
  }
  return Infinity
}

// ---------------------------------------------------------------------------------------
// 3. Express 5 through an outage

function makeApp(store) {
  const app = express()
  app.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false }))
  app.post('/login', async (req, res) => {
    await store.saveSession(req, 'u1')
    res.json({ ok: true })
  })
  app.get('/me', (req, res) => {
    if (!req.session || !req.session.userId) return res.sendStatus(401)
    res.json({ userId: req.session.userId })
  })
  // express-session reports a failed save after the answer has started: nothing to send.
  app.use((err, req, res, next) => {
    if (res.headersSent) return
    res.status(503).json({ code: err.code || 'unknown' })
  })
  return app
}

/** A request that never throws: `{ status, body, cookie, ms }`, or `{ error, ms }`. */
async function request(base, method, path, cookie) {
  const started = Date.now()
  try {
    const res = await fetch(base + path, {
      method,
      headers: cookie ? { cookie } : {},
      signal: AbortSignal.timeout(REQUEST_TIMEOUT),
    })
    const text = await res.text()
    const line = res.headers.getSetCookie().find((c) => c.startsWith('connect.sid='))
    const body = text.startsWith('{') ? JSON.parse(text) : text
    return { status: res.status, body, cookie: line && line.split(';')[0], ms: ms(started) }
  } catch (error) {
    return { error: `${error.name}: ${error.message}`, ms: ms(started), method, path }
  }
}

const ms = (started) => Date.now() - started

async function login(base) {
  const res = await request(base, 'POST', '/login')
  assert.equal(res.status, 200, `login answered ${res.status || res.error}`)
  assert.ok(res.cookie, 'login must set a connect.sid cookie')
  return res.cookie
}

/** Concurrent requests to /me and /login, with and without the session cookie. */
function burst(base, cookie) {
  const calls = []
  for (let i = 0; i < 4; i++) {
    for (const [method, path] of [['GET', '/me'], ['POST', '/login']]) {
      calls.push(request(base, method, path).then((r) => ({ ...r, label: `${path}` })))
      calls.push(request(base, method, path, cookie)
        .then((r) => ({ ...r, label: `${path}+cookie` })))
    }
  }
  return Promise.all(calls)
}

describe('an Express 5 app with express-session through an outage', () => {
  let redis
  let store
  let events
  let server
  let base

  before(async () => {
    redis = await RedisServer.start()
    const opened = await openStore(redis)
    store = opened.store
    events = opened.events
    server = await listen(makeApp(store))
    base = `http://127.0.0.1:${server.address().port}`
  })

  after(async () => {
    await closeServer(server)
    await closeStore(store)
    if (redis) await redis.stop()
  })

  it('answers every request during the outage, with and without a cookie',
    { timeout: 20000 }, async (t) => {
      const cookie = await login(base)
      assert.equal((await request(base, 'GET', '/me', cookie)).status, 200)

      const from = events.length
      await redis.kill()
      const early = await burst(base, cookie)
      await nextEvent(events, 'disconnect', from, 3000)
      const paused = await burst(base, cookie)
      await sleep(500)
      const later = await burst(base, cookie)

      const all = [...early, ...paused, ...later]
      reportRequests(t, all)
      assert.deepEqual(all.filter((r) => r.error), [], 'requests without an answer')
      const granted = all.filter((r) => r.label === '/me+cookie' && r.status === 200)
      assert.equal(granted.length, 0, 'the protected route answered 200 without Redis')
    })

  it('after Redis is back, a login made after recovery opens the protected route',
    { timeout: 15000 }, async () => {
      const from = events.length
      await redis.restart()
      await nextEvent(events, 'connect', from, 3000)

      const cookie = await login(base)
      const me = await request(base, 'GET', '/me', cookie)
      assert.equal(me.status, 200, `/me answered ${me.status || me.error}`)
      assert.deepEqual(me.body, { userId: 'u1' })
      assert.equal((await request(base, 'GET', '/me')).status, 401)
    })
})

function reportRequests(t, results) {
  const statuses = {}
  for (const r of results) {
    const key = `${r.label} ${r.status || 'no answer'}`
    statuses[key] = (statuses[key] || 0) + 1
  }
  const worst = Math.max(...results.map((r) => r.ms))
  t.diagnostic(`${results.length} requests, slowest ${worst} ms: ${JSON.stringify(statuses)}`)
}

// ---------------------------------------------------------------------------------------
// 4. No unbounded queue through a long outage

describe('no unbounded queue through a 30 s outage', () => {
  let server
  let store
  let events

  before(async () => {
    server = await RedisServer.start()
    const opened = await openStore(server, { commandTimeout: MEMORY_TIMEOUT })
    store = opened.store
    events = opened.events
  })

  after(async () => {
    await closeStore(store)
    if (server) await server.stop()
  })

  it('keeps RSS flat, and never more calls pending than loops', { timeout: 45000 }, async (t) => {
    const stats = newStats(MEMORY_TIMEOUT + 500)
    const load = runLoad(store, stats, { ops: ['get', 'set'], tag: 'm' })
    await sleep(200)
    const from = events.length
    await server.kill()
    stats.phase = 'outage'

    const samples = await sampleMemory(stats, OUTAGE_MS)
    await load.stop()

    printSamples(t, samples)
    t.diagnostic(summary(stats))
    t.diagnostic(`most calls in flight: ${stats.maxInFlight}`)
    assert.ok(events.slice(from).some((e) => e.name === 'disconnect'), 'no disconnect')
    assert.ok(stats.maxInFlight <= LOOPS, `${stats.maxInFlight} calls in flight`)
    assert.equal(stats.inFlight, 0, 'calls still pending after the load stopped')
    assert.ok(stats.byPhase.outage.failed > 0, 'no call failed during the outage')
    assertSettledWell(stats)
    const growth = samples.at(-1).rss - samples[4].rss
    assert.ok(growth < 50 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB after 5 s`)
  })

  it('reconnects within 1 s once the server is back', { timeout: 10000 }, async (t) => {
    const from = events.length
    const restartedAt = Date.now()
    await server.restart()
    const back = await nextEvent(events, 'connect', from, 3000)

    t.diagnostic(`connect ${back.at - restartedAt} ms after restart() was called`)
    assert.ok(back.at - restartedAt <= EVENT_BOUND, `connect ${back.at - restartedAt} ms late`)
    await store.set('after-outage', payload({ v: 1 }))
    assert.equal((await store.get('after-outage')).v, 1)
  })
})

/** One sample per second for `duration` ms: RSS, heap, calls in flight and settled. */
async function sampleMemory(stats, duration) {
  const samples = []
  const start = Date.now()
  for (let s = 1; s * 1000 <= duration; s++) {
    await sleep(Math.max(0, start + s * 1000 - Date.now()))
    const { rss, heapUsed } = process.memoryUsage()
    samples.push({ s, rss, heapUsed, inFlight: stats.inFlight, settled: stats.settled })
  }
  return samples
}

function printSamples(t, samples) {
  for (const { s, rss, heapUsed, inFlight, settled } of samples) {
    const rssMb = (rss / MB).toFixed(1)
    const heapMb = (heapUsed / MB).toFixed(1)
    t.diagnostic(`t=${s}s rss=${rssMb} MB heapUsed=${heapMb} MB ` +
      `inFlight=${inFlight} settled=${settled}`)
  }
}

// ---------------------------------------------------------------------------------------
// 5. Nothing escaped

it('no unhandled rejection and no uncaught exception in the whole file', () => {
  assert.deepEqual(unhandledRejections, [])
  assert.deepEqual(uncaughtExceptions, [])
})
