'use strict'

/**
 * `npm run bench`: one redis-server, every contender against it in interleaved rounds (the
 * order rotated each round), medians reported. See README.md.
 */

const os = require('node:os')
const fs = require('node:fs')
const { promisify } = require('node:util')
const { config } = require('./config')
const { PREFIX, selectContenders } = require('./contenders')
const { runPhase, gc } = require('./measure')
const { startRedis, adminClient, memoryOf, redisBenchmark, redisVersion } = require('./redis')
const { startApp, relogin, drive, stopApp } = require('./http')
const { report } = require('./report')
const { makeSessions, sidGenerator, jsonBytes } = require('./session')

const cleanups = []
let cleaning = null
let interrupted = false

/** Runs the registered clean-ups once, newest first, each bounded to 5 s. */
function cleanup() {
  cleaning = cleaning || (async () => {
    while (cleanups.length > 0) {
      const { name, fn } = cleanups.pop()
      const timeout = new Promise((resolve) => setTimeout(resolve, 5000, 'timeout').unref())
      const outcome = await Promise.race([Promise.resolve().then(fn).catch((e) => e), timeout])
      if (outcome === 'timeout' || outcome instanceof Error) {
        console.error(`clean-up of ${name}: ${outcome === 'timeout' ? 'timed out' : outcome}`)
      }
    }
  })()
  return cleaning
}

function onCleanup(name, fn) {
  cleanups.push({ name, fn })
}

function log(message) {
  process.stderr.write(`${message}\n`)
}

function rotate(list, by) {
  return list.map((_, i) => list[(i + by) % list.length])
}

/** Each store writes, reads, touches and destroys one session correctly before we time it. */
async function sanityCheck(contender, store, admin, session) {
  const call = (method, ...args) => promisify(store[method]).call(store, ...args)
  const sid = sidGenerator()()
  await call('set', sid, session)
  const back = await call('get', sid)
  if (!back || back.userId !== session.userId ||
    new Date(back.cookie.expires).getTime() !== session.cookie.expires.getTime()) {
    throw new Error(`${contender.name}: get did not return the session written`)
  }
  const raw = await admin.get(PREFIX + sid)
  const ttl = await admin.pTTL(PREFIX + sid)
  if (raw === null || ttl <= 0) throw new Error(`${contender.name}: no key with a TTL in Redis`)
  await call('touch', sid, session)
  await call('destroy', sid)
  if (await call('get', sid)) throw new Error(`${contender.name}: destroy left the session`)
  return raw.includes(session.userId)
}

/** One operation at one concurrency for one contender; `pools` carries sids between ops. */
async function phase(ctx, contender, op, concurrency, seconds) {
  const poolKey = `${contender.name}@${concurrency}`
  const result = await runPhase(ctx.stores[contender.name].store, op, {
    concurrency, seconds, sessions: ctx.sessions, pool: ctx.pools[poolKey],
    nextSid: ctx.nextSid,
  })
  if (op === 'set') ctx.pools[poolKey] = result.written
  if (result.errors > 0 || result.misses > 0) {
    log(`  ! ${contender.name} ${op} c${concurrency}: ${result.errors} errors ` +
      `(${result.firstError}), ${result.misses} missing sessions`)
  }
  delete result.written
  return { result, written: op === 'set' ? ctx.pools[poolKey] : null }
}

/** Every operation at every concurrency, contenders interleaved in `order`. */
async function microRound(ctx, order, seconds, record) {
  for (const concurrency of config.concurrencies) {
    for (const op of config.operations) {
      for (const contender of order) {
        const { result, written } = await phase(ctx, contender, op, concurrency, seconds)
        if (record) await record(contender, `${op}@${concurrency}`, result, written)
      }
    }
  }
}

async function ceilingRound(ctx) {
  for (const c of config.concurrencies) {
    const previous = ctx.results.ceiling[`set@${c}`]
    const guess = previous ? previous[previous.length - 1].opsPerSec : (c === 1 ? 20000 : 50000)
    const out = await redisBenchmark(ctx.redis, c, config.benchSeconds, guess)
    for (const op of ['set', 'get']) {
      const key = `${op}@${c}`
      ctx.results.ceiling[key] = ctx.results.ceiling[key] || []
      ctx.results.ceiling[key].push(out[op.toUpperCase()])
    }
  }
}

async function httpRound(ctx, order, seconds, record) {
  for (const contender of order) {
    const app = ctx.apps[contender.name]
    await relogin(app)
    const result = await drive(app, seconds, config.httpConnections)
    if (result.failures > 0) log(`  ! ${contender.name} HTTP: ${result.failures} failures`)
    if (record) ctx.results.http[contender.name].push(result)
  }
}

async function setUp() {
  const redis = await startRedis()
  onCleanup('redis-server', () => redis.stop())
  log(`redis-server on port ${redis.port}`)
  const admin = await adminClient(redis.url)
  onCleanup('admin client', () => admin.close())

  const contenders = selectContenders(config.only)
  const sessions = makeSessions(1024)
  const ctx = { redis, admin, contenders, sessions, stores: {}, apps: {}, pools: {},
    nextSid: sidGenerator(), results: { micro: {}, ceiling: {}, http: {}, memory: {},
      jsonBytes: jsonBytes(sessions[0]) } }
  for (const contender of contenders) {
    const handle = await contender.create(redis.url, config.secret)
    ctx.stores[contender.name] = handle
    onCleanup(`store ${contender.name}`, handle.close)
    const readable = await sanityCheck(contender, handle.store, admin, sessions[0])
    ctx.results.memory[contender.name] = { readable }
    ctx.results.micro[contender.name] = {}
    ctx.results.http[contender.name] = []
  }
  if (!config.skipHttp) {
    for (const contender of contenders) {
      const app = await startApp(contender, redis.url, config.secret)
      ctx.apps[contender.name] = app
      onCleanup(`app ${contender.name}`, () => stopApp(app))
    }
  }
  return ctx
}

/** Keeps a phase's result; after the first `set` phase, measures the sessions it wrote. */
function recorder(ctx, round) {
  return async (contender, key, result, written) => {
    const perOp = ctx.results.micro[contender.name]
    perOp[key] = perOp[key] || []
    perOp[key].push(result)
    if (round === 0 && key === `set@${config.concurrencies[0]}`) {
      await measureMemory(ctx, contender, written)
    }
  }
}

/** MEMORY USAGE over up to 200 of the sessions `sids` (spread evenly), before any destroy. */
async function measureMemory(ctx, contender, sids) {
  const step = Math.max(1, Math.floor(sids.length / 200))
  const keys = sids.filter((_, i) => i % step === 0).slice(0, 200).map((s) => PREFIX + s)
  Object.assign(ctx.results.memory[contender.name], await memoryOf(ctx.admin, keys))
}

async function main() {
  const started = Date.now()
  const machine = {
    date: new Date().toISOString(), nproc: os.availableParallelism(), cpu: cpuModel(),
    node: process.version, redis: await redisVersion(), loadStart: loadAverage(),
  }
  log(`sealed-redis-session benchmark: ${config.rounds} round(s), ${config.seconds} s/phase` +
    `${config.quick ? ' (quick)' : ''}`)
  const ctx = await setUp()

  log('warming up')
  await microRound(ctx, ctx.contenders, config.warmupSeconds, null)
  if (!config.skipHttp) await httpRound(ctx, ctx.contenders, 1, null)
  await ctx.admin.flushAll()

  for (let round = 0; round < config.rounds; round++) {
    const order = rotate(ctx.contenders, round)
    log(`round ${round + 1}/${config.rounds}: ${order.map((c) => c.name).join(', ')}`)
    await ceilingRound(ctx)
    await microRound(ctx, order, config.seconds, recorder(ctx, round))
    if (!config.skipHttp) await httpRound(ctx, order, config.httpSeconds, true)
    await ctx.admin.flushAll()
    ctx.pools = {}
    gc()
  }

  machine.loadEnd = loadAverage()
  machine.duration = `took ${((Date.now() - started) / 1000).toFixed(0)} s`
  return report(ctx.results, ctx.contenders, config, machine)
}

function cpuModel() {
  const match = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))
  return match ? match[1] : os.cpus()[0].model
}

function loadAverage() {
  return os.loadavg().map((v) => v.toFixed(2)).join(' ')
}

function exitAfterCleanup(code) {
  cleanup().finally(() => {
    process.exitCode = code
    setTimeout(() => {
      log('handles still open after clean-up: forcing exit')
      process.exit(code)
    }, 5000).unref()
  })
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    interrupted = true
    log(`${signal}: cleaning up`)
    cleanup().finally(() => process.exit(130))
  })
}

main().then(() => interrupted || exitAfterCleanup(0), (err) => {
  if (interrupted) return
  console.error(err)
  exitAfterCleanup(1)
})
