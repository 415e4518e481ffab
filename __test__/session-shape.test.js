'use strict'

// A session read arrives cut into shape and values (src/json_split.rs) and is built by a
// compiled function (lib/session-shape.js): it must be the very object JSON.parse builds.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const path = require('node:path')
const native = require('../native.js')
const { shapeBuilder, interpretedBuilder } = require('../lib/session-shape')
const { prng } = require('./helpers/prng')

/** Builds `json` as the store does: cut natively, then built; null when it is not cut. */
function viaShape(json, makeBuilder = shapeBuilder) {
  const split = native.splitSessionJson(json)
  if (split === null) return { cut: false }
  const builder = makeBuilder(split.descriptor)
  assert.equal(builder.slots, split.slots.length, `slots of ${split.descriptor}`)
  const numbers = Float64Array.from([7, 7, ...split.slots])
  return { cut: true, value: builder.build(split.text, numbers, 2) }
}

/** Equal as JS sees them: same prototypes, same own keys in the same order, Object.is. */
function assertSame(actual, expected, where = 'session') {
  if (expected === null || typeof expected !== 'object') {
    assert.ok(Object.is(actual, expected), `${where}: ${String(actual)} vs ${String(expected)}`)
    return
  }
  assert.equal(typeof actual, 'object', where)
  assert.equal(Object.getPrototypeOf(actual), Object.getPrototypeOf(expected), `${where}: proto`)
  assert.deepEqual(Reflect.ownKeys(actual), Reflect.ownKeys(expected), `${where}: keys`)
  for (const key of Reflect.ownKeys(expected)) {
    const [mine, theirs] = [actual, expected].map((o) => Object.getOwnPropertyDescriptor(o, key))
    assert.deepEqual({ ...mine, value: 0 }, { ...theirs, value: 0 }, `${where}.${key}`)
    assertSame(actual[key], expected[key], `${where}.${String(key)}`)
  }
}

/**
 * Checks one JSON text both ways: built from its cut, or refused and left to JSON.parse.
 * Stored JSON is UTF-8, so a text with a lone surrogate (not an escaped one) never occurs.
 */
function check(json) {
  if (!json.isWellFormed()) return false
  let expected
  try {
    expected = JSON.parse(json)
  } catch {
    assert.equal(native.splitSessionJson(json), null, `cut invalid JSON: ${json}`)
    return false
  }
  const compiled = viaShape(json)
  if (!compiled.cut) return false
  assertSame(compiled.value, expected, json)
  assertSame(viaShape(json, interpretedBuilder).value, expected, json)
  return true
}

/** Random JSON text in the forms JSON allows, with the keys and strings that trip parsers. */
function randomJson(next, depth = 0) {
  const pick = (list) => list[Math.floor(next() * list.length)]
  const space = () => (next() < 0.15 ? pick([' ', '\n', '\t ', '\r\n']) : '')
  const roll = next()
  if (depth === 0 || (roll < 0.3 && depth < 5)) {
    const members = Array.from({ length: Math.floor(next() * 7) }, () =>
      `${space()}${randomKey(next)}${space()}:${randomJson(next, depth + 1)}`)
    return `${space()}{${members.join(',')}${space()}}${space()}`
  }
  if (roll < 0.4) {
    const items = Array.from({ length: Math.floor(next() * 4) }, () => randomJson(next, depth + 1))
    return `[${items.join(',')}]`
  }
  if (roll < 0.7) return randomString(next)
  if (roll < 0.9) return randomNumber(next)
  return pick(['true', 'false', 'null'])
}

function randomKey(next) {
  const keys = ['"userId"', '"cookie"', '"a"', '"__proto__"', '"0"', '"10"', '"-1"', '"1.5"',
    '"constructor"', '"toString"', '"é"', '"\\u0061"', '"a\\"b"', '"😀"', '""', '"a b"',
    '"hasOwnProperty"', '"x\\ny"', `"${'k'.repeat(70)}"`]
  return keys[Math.floor(next() * keys.length)]
}

function randomString(next) {
  const pieces = ['a', 'é', '😀', '\\"', '\\\\', '\\/', '\\b', '\\f', '\\n', '\\r', '\\t',
    '\\u0000', '\\u001f', '\\u00e9', '\\ud83d\\ude00', '\\ud800', '\\udc00', '\\uD800x',
    '\u2028', ' ', 'user-100000', '2026-12-05T16:00:41.225Z']
  const length = Math.floor(next() * 5)
  return `"${Array.from({ length }, () => pieces[Math.floor(next() * pieces.length)]).join('')}"`
}

function randomNumber(next) {
  const forms = ['0', '-0', '1', '-1', '86400000', '1733332509969', '0.1', '-12.5e-1', '1e400',
    '-1e400', '1E+2', '5e-324', '2e-324', '9007199254740993', '123456789012345678901234567890',
    '1.7976931348623157e308', '0.30000000000000004', '4.35', '1e21', '1e-7']
  if (next() < 0.5) return forms[Math.floor(next() * forms.length)]
  return String((next() - 0.5) * 10 ** Math.floor(next() * 30 - 10))
}

describe('sessions built from their shape', () => {
  it('are the objects JSON.parse builds, for random JSON', () => {
    const next = prng(11)
    let cut = 0
    for (let n = 0; n < 20_000; n++) if (check(randomJson(next))) cut++
    // Many random keys make their object go to JSON.parse whole; a third must still be cut.
    assert.ok(cut > 6000, `only ${cut} of 20000 were cut`)
  })

  it('include the express-session sessions a store reads', () => {
    const session = '{"cookie":{"originalMaxAge":86400000,"expires":"2026-12-05T16:00:41.225Z",' +
      '"secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"userId":"user-100000",' +
      '"role":"member","flash":{"info":["saved"]},"loginAt":1733332509969}'
    assert.ok(check(session))
  })

  it('are never made of JSON that JSON.parse refuses', () => {
    const next = prng(12)
    for (let n = 0; n < 5000; n++) {
      const json = randomJson(next)
      const cut = Math.floor(next() * json.length)
      check(json.slice(0, cut) + json.slice(cut + 1))
      check(json.slice(0, cut))
    }
  })

  it('keep `__proto__` an own key, as JSON.parse does', () => {
    const json = '{"a":{"__proto__":{"polluted":true}},"b":1}'
    const { value } = viaShape(json)
    assert.equal(Object.getPrototypeOf(value.a), Object.prototype)
    assert.equal(value.a.polluted, undefined)
    assertSame(value, JSON.parse(json))
    const shape = '["o","a",["o","__proto__",["o","polluted","b"]]]'
    const built = shapeBuilder(shape).build('', Float64Array.of(1), 0)
    assert.equal(Object.getPrototypeOf(built.a), Object.prototype)
    assert.deepEqual(Object.keys(built.a), ['__proto__'])
  })

  it('are built the same where code generation is not allowed', () => {
    const script = `
      const assert = require('node:assert/strict')
      const native = require(${JSON.stringify(path.join(__dirname, '..', 'native.js'))})
      const shape = require(${JSON.stringify(path.join(__dirname, '..', 'lib/session-shape'))})
      assert.equal(shape.CAN_COMPILE, false)
      const json = '{"cookie":{"path":"/","n":1},"userId":"u","list":[1],"ok":true,"z":null}'
      const split = native.splitSessionJson(json)
      const built = shape.shapeBuilder(split.descriptor)
        .build(split.text, Float64Array.from(split.slots), 0)
      assert.equal(JSON.stringify(built), json)
      process.stdout.write('built')`
    const out = execFileSync(process.execPath,
      ['--disallow-code-generation-from-strings', '-e', script], { encoding: 'utf8' })
    assert.equal(out, 'built')
  })
})

describe('sessions read while Node\'s thread is busy', () => {
  it('all arrive intact when thousands of reads finish at once', async () => {
    const { once } = require('node:events')
    const { RedisStore } = require('..')
    const { RedisServer } = require('./helpers/redis-server')
    const server = await RedisServer.start()
    const store = new RedisStore({ url: server.url, secret: 's', commandTimeout: 30_000 })
    try {
      await once(store, 'connect')
      const sessions = Array.from({ length: 50 }, (_, n) => ({ cookie: null, userId: `u-${n}` }))
      await Promise.all(sessions.map((session, n) => store.set(`busy-${n}`, session)))

      // Their outcomes pile up while this thread is kept busy, and cross in one batch of far
      // more sessions than are passed as arguments of their own (src/batch_call.rs).
      const reads = Array.from({ length: 20_000 }, (_, i) => store.get(`busy-${i % 50}`))
      const until = Date.now() + 1500
      while (Date.now() < until) { /* busy */ }
      const read = await Promise.all(reads)
      read.forEach((session, i) => assert.deepEqual(session, sessions[i % 50], `read ${i}`))
    } finally {
      await store.close()
      await server.stop()
    }
  })
})
