'use strict'

// Sessions are written as their shape's values (lib/session-encoder.js) and turned into
// JSON natively (src/json_join.rs): what Redis holds must be exactly JSON.stringify(session),
// read here from Redis and decrypted with node:crypto.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { Cookie, Session } = require('express-session')
const { RESP_TYPES } = require('redis')
const { RedisStore } = require('..')
const { SessionEncoder } = require('../lib/session-encoder')
const { RedisServer } = require('./helpers/redis-server')
const { openEnvelope } = require('./helpers/envelope')
const { prng } = require('./helpers/prng')

const KEY = Buffer.alloc(32, 9)
const PREFIX = 'session:'

class Point {
  constructor(x) {
    this.x = x
  }
}

/** Random sessions in the forms express-session and applications give a store. */
function sessionMaker(next) {
  const pick = (list) => list[Math.floor(next() * list.length)]
  const chance = (p) => next() < p

  const strings = ['', 'user-100000', 'é', '😀', '"', '\\', '\n\t\r\b\f', '\u0000\u001f',
    '\u2028', '\ud800', 'a\udc00b', 'x'.repeat(40), '</script>', '2026-12-05T16:00:41.225Z']
  const numbers = [0, -0, 1, -1, 86_400_000, 1_733_332_509_969, 0.1, -2.5, 1e21, 1e-7, NaN,
    Infinity, -Infinity, 2 ** 53, 2 ** 53 + 2, 5e-324, 123456789.123, Number.MAX_VALUE]
  const dates = () => pick([new Date(1_733_332_509_969), new Date(NaN), new Date(8.64e15),
    new Date(-8.64e15), new Date(-1), new Date(253_402_300_800_000), new Date(0)])

  function string() {
    return Array.from({ length: Math.floor(next() * 3) }, () => pick(strings)).join('')
  }

  function value(depth) {
    const roll = next()
    if (roll < 0.25) return string()
    if (roll < 0.45) return pick(numbers)
    if (roll < 0.5) return chance(0.5)
    if (roll < 0.55) return null
    if (roll < 0.58) return pick([undefined, () => 1, Symbol('s')])
    if (roll < 0.64) return dates()
    if (roll < 0.72) return Array.from({ length: Math.floor(next() * 4) }, () => value(depth + 1))
    if (roll < 0.85 && depth < 3) return object(depth + 1, chance(0.2) ? null : Object.prototype)
    if (roll < 0.88) return new Point(pick(numbers))
    if (roll < 0.9) return { toJSON: (key) => `custom ${key}` }
    if (roll < 0.92) return pick([new String('boxed'), new Number(3), new Boolean(false)])
    if (roll < 0.94) return new Map([[1, 2]])
    return string()
  }

  function object(depth, prototype) {
    const target = Object.create(prototype)
    const keys = ['userId', 'role', 'n', '0', '10', 'é', 'a"b', 'flash', 'cart', 'when', '']
    for (let i = Math.floor(next() * 6); i > 0; i--) {
      const key = chance(0.05) ? '__proto__' : pick(keys)
      Object.defineProperty(target, key,
        { value: value(depth), enumerable: true, writable: true, configurable: true })
    }
    return target
  }

  function cookie() {
    const roll = next()
    if (roll < 0.2) return undefined
    if (roll < 0.3) return { originalMaxAge: 1000, expires: '2099-01-01T00:00:00.000Z', path: '/' }
    const made = new Cookie({
      maxAge: chance(0.7) ? Math.floor(next() * 1e9) : undefined,
      httpOnly: chance(0.8), secure: chance(0.3), path: pick(['/', '/app', undefined]),
      sameSite: pick(['lax', 'strict', 'none', true, false, undefined]),
      domain: chance(0.2) ? 'example.com' : undefined,
      partitioned: chance(0.1) ? true : undefined,
      priority: chance(0.1) ? 'high' : undefined,
    })
    // Not in the past: the store deletes a session whose cookie has expired.
    if (chance(0.1)) made.expires = new Date(Date.now() + pick([3_600_000, 3e11]))
    return made
  }

  return () => {
    const fields = object(1, Object.prototype)
    const made = cookie()
    const roll = next()
    let session
    if (roll < 0.7) session = {}
    else if (roll < 0.85) session = Object.create(null)
    else session = new Session({ sessionID: 'sid' }, {})
    if (made !== undefined) session.cookie = made
    for (const key of Object.keys(fields)) {
      Object.defineProperty(session, key,
        { value: fields[key], enumerable: true, writable: true, configurable: true })
    }
    return session
  }
}

describe('sessions written as their shape\'s values', () => {
  let server
  let raw
  let store

  before(async () => {
    server = await RedisServer.start()
    raw = (await server.client()).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
    store = new RedisStore({ url: server.url, secret: 's', encryptionKeys: [KEY] })
    await once(store, 'connect')
  })

  after(async () => {
    await store.close()
    await raw.quit()
    await server.stop()
  })

  /** Writes `sessions` at once; each stored JSON must be JSON.stringify's, byte for byte. */
  async function assertStoredAsJson(sessions, label, writer = store) {
    const sids = sessions.map((_, i) => `${label}-${i}`)
    await Promise.all(sessions.map((session, i) => writer.set(sids[i], session)))
    const values = await raw.mGet(sids.map((sid) => PREFIX + sid))
    values.forEach((value, i) => {
      assert.ok(value, `${label} ${i}: nothing stored`)
      const stored = openEnvelope(value, PREFIX + sids[i], KEY)
      assert.equal(stored, JSON.stringify(sessions[i]), `${label} ${i}`)
    })
  }

  it('are stored exactly as JSON.stringify writes them, for random sessions', async () => {
    const next = prng(21)
    const make = sessionMaker(next)
    let encoded = 0
    for (let round = 0; round < 40; round++) {
      // A store of its own each round: random sessions take many shapes, and a store
      // compiles only the first 64 it meets.
      const fresh = new RedisStore({ url: server.url, secret: 's', encryptionKeys: [KEY] })
      const encoder = new SessionEncoder()
      const sessions = Array.from({ length: 50 }, make)
      for (const session of sessions) if (encoder.encode(session) >= 0) encoded++
      await assertStoredAsJson(sessions, `random-${round}`, fresh)
      await fresh.close()
    }
    assert.ok(encoded > 1000, `only ${encoded} of 2000 sessions were encoded by shape`)
  })

  it('keeps a session right when its shape changes from one write to the next', async () => {
    const session = { cookie: new Cookie({ maxAge: 60_000 }), userId: 'u' }
    const versions = []
    for (const change of [() => {}, (s) => { s.flash = ['hi'] }, (s) => { s.userId = 7 },
      (s) => { delete s.flash }, (s) => { s.cookie.domain = 'a.example' },
      (s) => { s.userId = 'u' }, (s) => { s.userId = null }]) {
      change(session)
      versions.push(structuredClone({ json: JSON.stringify(session) }))
      await store.set('changing', session)
      const [value] = await raw.mGet([`${PREFIX}changing`])
      assert.equal(openEnvelope(value, `${PREFIX}changing`, KEY), versions.at(-1).json)
    }
  })

  it('stores sessions of more shapes than are compiled, through JSON.stringify', async () => {
    const sessions = Array.from({ length: 150 }, (_, n) => ({ [`field${n}`]: n, cookie: null }))
    await assertStoredAsJson(sessions, 'many-shapes')
    const encoder = new SessionEncoder()
    const numbers = sessions.map((session) => encoder.encode(session))
    assert.deepEqual(numbers.slice(0, 64), Array.from({ length: 64 }, (_, n) => n))
    assert.ok(numbers.slice(64).every((number) => number === -1))
  })

  it('reads back sessions of more shapes than are numbered, through JSON.parse', async () => {
    // Each session its own shape: past the 256 a store numbers (src/shape_registry.rs), the
    // store hands the JSON over whole.
    const reader = new RedisStore({ url: server.url, secret: 's', encryptionKeys: [KEY] })
    try {
      await once(reader, 'connect')
      const sessions = Array.from({ length: 300 },
        (_, n) => ({ cookie: null, [`field${n}`]: { n, list: [n] }, userId: `u-${n}` }))
      await assertStoredAsJson(sessions, 'read-shapes')
      const read = await Promise.all(sessions.map((_, i) => reader.get(`read-shapes-${i}`)))
      read.forEach((session, i) => {
        assert.equal(JSON.stringify(session), JSON.stringify(sessions[i]), `session ${i}`)
      })
    } finally {
      await reader.close()
    }
  })

  it('defines its shapes again after a batch that could not be handed over', async () => {
    const native = require('../native.js')
    const writer = new RedisStore({ url: server.url, secret: 's', encryptionKeys: [KEY] })
    const flushOps = native.flushOps
    try {
      await once(writer, 'connect')
      // The first batch carries the shape's definition, and is refused before Rust sees it.
      native.flushOps = () => {
        native.flushOps = flushOps
        throw new Error('ERR_REDIS: refused for the test')
      }
      const session = { cookie: new Cookie({ maxAge: 60_000 }), userId: 'again' }
      await assert.rejects(writer.set('again', session), { code: 'ERR_REDIS' })
      await writer.set('again', session)
      const [value] = await raw.mGet([`${PREFIX}again`])
      assert.equal(openEnvelope(value, `${PREFIX}again`, KEY), JSON.stringify(session))
    } finally {
      native.flushOps = flushOps
      await writer.close()
    }
  })

  it('refuses what JSON.stringify refuses, with the same reason', async () => {
    const circular = { cookie: {} }
    circular.self = { back: circular }
    for (const session of [{ n: 1n }, { list: [2n] }, circular]) {
      const expected = (() => {
        try {
          return JSON.stringify(session)
        } catch (err) {
          return err
        }
      })()
      await assert.rejects(store.set('refused', session), (err) => {
        assert.equal(err.code, 'ERR_INVALID_ARG')
        assert.match(err.message, new RegExp(expected.message.split('\n')[0]))
        return true
      })
    }
  })

  it('keeps each session\'s values when a ttl function writes another session', async () => {
    let nested = null
    const writer = new RedisStore({
      url: server.url, secret: 's', encryptionKeys: [KEY],
      ttl: (session) => {
        if (session.outer) nested = writer.set('inner', { cookie: null, inner: 'yes', n: 2 })
        return 60
      },
    })
    try {
      const outer = { cookie: null, outer: 'yes', n: 1 }
      await writer.set('outer', outer)
      await nested
      const [outerValue, innerValue] = await raw.mGet([`${PREFIX}outer`, `${PREFIX}inner`])
      assert.equal(openEnvelope(outerValue, `${PREFIX}outer`, KEY), JSON.stringify(outer))
      assert.equal(openEnvelope(innerValue, `${PREFIX}inner`, KEY),
        '{"cookie":null,"inner":"yes","n":2}')
    } finally {
      await writer.close()
    }
  })

  it('read a getter once for a shape already seen, as JSON.stringify does', async () => {
    const encoder = new SessionEncoder()
    let reads = 0
    const session = { cookie: null, get userId() { reads++; return 'u' } }
    encoder.encode(session)
    reads = 0
    assert.equal(encoder.encode(session), 0)
    assert.equal(reads, 1)
  })
})
