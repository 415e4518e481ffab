'use strict'

/**
 * One timed phase: `concurrency` independent loops calling one Store operation with a
 * callback, exactly as express-session calls it, until the time is up. Records every
 * operation's latency and the CPU the process and its main thread spent meanwhile.
 */

const v8 = require('node:v8')
const vm = require('node:vm')
const { cpuSnapshot, cpuSince } = require('./cpu')

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

/** A growable array of doubles. */
class Samples {
  constructor() {
    this.data = new Float64Array(1 << 16)
    this.length = 0
  }

  push(value) {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.length++] = value
  }

  /** `{ p50, p99 }`, nearest rank. */
  percentiles() {
    const sorted = this.data.slice(0, this.length).sort()
    const at = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
    return { p50: at(0.5), p99: at(0.99) }
  }
}

/**
 * The operations. Each is `(ctx, i, done)`; `ctx` holds the store, the sessions, the sid pool
 * written by the `set` phase, and counters. `destroy` returns false once its pool is used up.
 */
const OPERATIONS = {
  set(ctx, i, done) {
    const sid = ctx.nextSid()
    ctx.written.push(sid)
    ctx.store.set(sid, ctx.sessions[i % ctx.sessions.length], done)
  },
  get(ctx, i, done) {
    ctx.store.get(ctx.pool[i % ctx.pool.length], (err, session) => {
      if (!err) check(ctx, session)
      done(err)
    })
  },
  touch(ctx, i, done) {
    ctx.store.touch(ctx.pool[i % ctx.pool.length], ctx.sessions[i % ctx.sessions.length], done)
  },
  destroy(ctx, i, done) {
    if (i >= ctx.pool.length) return false
    ctx.store.destroy(ctx.pool[i], done)
  },
  setget(ctx, i, done) {
    const sid = ctx.nextSid()
    ctx.store.set(sid, ctx.sessions[i % ctx.sessions.length], (err) => {
      if (err) return done(err)
      ctx.store.get(sid, (getErr, session) => {
        if (!getErr) check(ctx, session)
        done(getErr)
      })
    })
  },
}

/** A read that gave no session, or not the one written, counts as a miss. */
function check(ctx, session) {
  if (!session || typeof session.userId !== 'string' || !session.cookie) ctx.misses++
}

/**
 * Runs `op` for `seconds` with `concurrency` loops. `pool`: sids that exist (get, touch,
 * destroy). Resolves to the phase's numbers, and `written`: the sids a `set` phase wrote.
 */
async function runPhase(store, op, { concurrency, seconds, sessions, pool, nextSid }) {
  const operation = OPERATIONS[op]
  if (!operation) throw new Error(`unknown operation ${op}`)
  if (op !== 'set' && op !== 'setget' && (!pool || pool.length === 0)) {
    throw new Error(`${op} needs sessions written by a set phase`)
  }
  const ctx = { store, sessions, pool, nextSid, written: [], misses: 0, errors: 0, error: null }
  const latencies = new Samples()
  gc()
  await new Promise((resolve) => setImmediate(resolve))

  const cpu = cpuSnapshot()
  const start = performance.now()
  const deadline = start + seconds * 1000
  let next = 0
  const loop = () => new Promise((resolve) => {
    const step = () => {
      if (performance.now() >= deadline) return resolve()
      const began = performance.now()
      const started = operation(ctx, next++, (err) => {
        if (err) {
          ctx.errors++
          ctx.error = ctx.error || err
        }
        latencies.push(performance.now() - began)
        step()
      })
      if (started === false) resolve()
    }
    step()
  })
  await Promise.all(Array.from({ length: concurrency }, loop))
  const elapsed = performance.now() - start
  const used = cpuSince(cpu)

  const ops = latencies.length
  if (ops === 0) throw new Error(`${op}: no operation completed`)
  return {
    ops,
    opsPerSec: ops / (elapsed / 1000),
    ...latencies.percentiles(),
    cpuProcess: used.process / ops,
    cpuMain: used.main / ops,
    cpuGroups: Object.fromEntries(Object.entries(used.groups).map(([k, v]) => [k, v / ops])),
    errors: ctx.errors,
    misses: ctx.misses,
    firstError: ctx.error ? String(ctx.error.message || ctx.error) : null,
    written: ctx.written,
  }
}

module.exports = { runPhase, OPERATIONS, gc }
