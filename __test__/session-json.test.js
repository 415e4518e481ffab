'use strict'

// The default serializer must write exactly what JSON.stringify writes, for every session.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { Cookie } = require('express-session')
const { SESSION_JSON, stringifySession, isoString, isPlainDate } = require('../lib/session-json')
const { normalizeOptions } = require('../lib/options')
const { prng } = require('./helpers/prng')

const END_MS = 253_402_300_800_000

function cookieExpiring(ms, options = {}) {
  const cookie = new Cookie({ httpOnly: true, path: '/', sameSite: 'lax', ...options })
  cookie.expires = new Date(ms)
  cookie.originalMaxAge = 86_400_000
  return cookie
}

function sessionAround(cookie, next) {
  const session = { cookie, userId: `user-${Math.floor(next() * 1e6)}` }
  if (next() < 0.5) session.role = next() < 0.5 ? 'member' : 'ädmin "quoted" \u2028 ☃'
  if (next() < 0.5) session.loginAt = next() * 1e13
  if (next() < 0.3) session.seen = new Date(next() * END_MS)
  if (next() < 0.3) session.cart = { items: [1, 'two', null, { three: true }], total: 3.5 }
  if (next() < 0.2) session.missing = undefined
  return session
}

describe('the default serializer', () => {
  it('is the one a store uses unless given another', () => {
    assert.equal(normalizeOptions({ secret: 's' }).js.serializer, SESSION_JSON)
    const own = { stringify: JSON.stringify, parse: JSON.parse }
    assert.equal(normalizeOptions({ secret: 's', serializer: own }).js.serializer, own)
  })

  it('formats dates as toISOString does, across 1970 to 9999', () => {
    const next = prng(1)
    const edges = [0, 1, 999, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999,
      4_107_542_400_000, 253_402_300_799_999, Date.UTC(2024, 1, 29, 23, 59, 59, 999)]
    const times = [...edges, ...Array.from({ length: 20_000 }, () => Math.floor(next() * END_MS))]
    for (const ms of times) {
      const date = new Date(ms)
      assert.equal(isoString(date), date.toISOString(), `at ${ms}`)
    }
  })

  it('writes exactly what JSON.stringify writes, for random sessions', () => {
    const next = prng(2)
    for (let n = 0; n < 5000; n++) {
      const session = sessionAround(cookieExpiring(Math.floor(next() * END_MS)), next)
      assert.equal(stringifySession(session), JSON.stringify(session))
    }
  })

  it('hands every unusual session to JSON.stringify, with the same result', () => {
    const plainCookie = { originalMaxAge: 1, expires: new Date(0), path: '/' }
    const ownToJson = cookieExpiring(1e12)
    ownToJson.toJSON = () => ({ replaced: true })
    const subclassed = cookieExpiring(1e12)
    subclassed.expires = new (class extends Date {})(1e12)
    const dateWithOwnJson = cookieExpiring(1e12)
    dateWithOwnJson.expires.toJSON = () => 'mine'
    const cases = {
      'no expiry': { cookie: new Cookie({}) },
      'a plain cookie object': { cookie: plainCookie },
      'a cookie with its own toJSON': { cookie: ownToJson },
      'a Date subclass': { cookie: subclassed },
      'a date with its own toJSON': { cookie: dateWithOwnJson },
      'an invalid date': { cookie: cookieExpiring(NaN) },
      'a date before 1970': { cookie: cookieExpiring(-1) },
      'a date after 9999': { cookie: cookieExpiring(END_MS) },
      'a session with its own toJSON': { cookie: cookieExpiring(1e12), toJSON: () => 'session' },
      'a session without a cookie': { userId: 'u' },
      'an array': [cookieExpiring(1e12)],
    }
    for (const [name, session] of Object.entries(cases)) {
      assert.equal(stringifySession(session), JSON.stringify(session), name)
    }
    for (const value of [null, 'text', 42]) {
      assert.equal(stringifySession(value), JSON.stringify(value))
    }
  })

  it('leaves the session and its cookie as they were', () => {
    const cookie = cookieExpiring(1.8e12)
    const expires = cookie.expires
    const session = { cookie, userId: 'u-1' }
    stringifySession(session)
    assert.equal(session.cookie, cookie)
    assert.equal(cookie.expires, expires)
    assert.ok(cookie.expires instanceof Date)
    assert.deepEqual(Object.keys(session), ['cookie', 'userId'])
  })

  it('keeps the order of the keys, with the cookie anywhere', () => {
    const session = { a: 1, cookie: cookieExpiring(1.7e12), 2: 'two', z: [1] }
    assert.equal(stringifySession(session), JSON.stringify(session))
  })

  it('keeps an own `__proto__` key, as JSON.stringify does', () => {
    const session = JSON.parse('{"__proto__":{"admin":true},"userId":"u"}')
    session.cookie = cookieExpiring(1.7e12)
    assert.match(JSON.stringify(session), /"__proto__":\{"admin":true\}/)
    assert.equal(stringifySession(session), JSON.stringify(session))
  })

  it('reads a Date as plain only while none of its JSON methods is replaced', () => {
    const plain = new Date(1e12)
    assert.equal(isPlainDate(plain), true)
    const replaced = [['valueOf', () => 1], [Symbol.toPrimitive, () => 1],
      ['toJSON', () => 'x'], ['toISOString', () => 'x']]
    for (const [method, replacement] of replaced) {
      const date = new Date(1e12)
      Object.defineProperty(date, method, { value: replacement })
      assert.equal(isPlainDate(date), false, String(method))
    }
    assert.equal(isPlainDate(new (class extends Date {})(1e12)), false)
    assert.equal(isPlainDate({ getTime: () => 1 }), false)
  })
})
