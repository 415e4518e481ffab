'use strict'

/**
 * Hostile input against every exported function and every store method, on a real Redis.
 * Each call must end in a coded Error naming the argument, or in null / false: never a
 * crash, a hang, an uncaught exception, or a write to Redis.
 */

const { describe, it, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const cookieSignature = require('cookie-signature')
const { RedisStore, sign, unsign } = require('..')
const { RedisServer } = require('./helpers/redis-server.js')

const recorded = []
process.on('unhandledRejection', (reason) => recorded.push(['unhandledRejection', reason]))
process.on('uncaughtException', (error) => recorded.push(['uncaughtException', error]))

const SECRET = 'hostile-input secret'
const HANG_MS = 5000
const TEST = { timeout: 60000 }
const FIVE_MB = 'x'.repeat(5 * 1024 * 1024)
/** Commands this file or the client library send; any other command is the store's. */
const HARNESS_COMMANDS = new Set(['info', 'config', 'flushall', 'keys', 'dbsize', 'ping',
  'hello', 'client', 'select', 'command', 'auth', 'quit'])

const WRONG_TYPES = [
  ['a number', 42], ['NaN', NaN], ['an object', {}], ['an array', ['sid']], ['null', null],
  ['undefined', undefined], ['a Symbol', Symbol('sid')], ['a function', () => 'sid'],
  ['a BigInt', 7n], ['a boolean', true], ['a Buffer', Buffer.from('sid')],
  ['a String object', new String('sid')],
]

const BAD_SID_STRINGS = [
  ['an empty string', ''], ['a 5 MB string', FIVE_MB], ['257 ASCII bytes', 'a'.repeat(257)],
  ['129 two-byte characters (258 bytes)', 'é'.repeat(129)],
  ['65 astral characters (260 bytes)', '😀'.repeat(65)],
  ['a NUL byte', 'a\0b'], ['only a NUL', '\0'], ['a trailing NUL', 'sid\0'],
  ['a newline', 'a\nb'], ['CR LF and a command', 'a\r\nSET x y'], ['a tab', 'a\tb'],
  ['DEL', 'a\x7fb'], ['a C1 control', 'a\u0085b'], ['an escape sequence', '\x1b[31m'],
]

const NOT_OBJECTS = [
  ['a number', 42], ['a JSON string', '{"a":1}'], ['null', null], ['undefined', undefined],
  ['a Symbol', Symbol('session')], ['a function', () => ({})], ['a boolean', false],
  ['a BigInt', 1n],
]

let server
let client
let store
const opened = []

// ---------------------------------------------------------------------------------------
// helpers

function show(value) {
  return util.inspect(value, { maxStringLength: 40, breakLength: Infinity })
}

/** `promise`, or a rejection coded `HANG` if it does not settle within `ms`. */
function within(promise, label, ms = HANG_MS) {
  let timer
  const hang = new Promise((resolve, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`${label}: no answer within ${ms} ms`)
      err.code = 'HANG'
      reject(err)
    }, ms)
  })
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer))
}

/** `{ value }` or `{ error }` of a promise, bounded by `within`. */
async function outcome(promise, label) {
  try {
    return { value: await within(promise, label) }
  } catch (error) {
    return { error }
  }
}

function assertCoded(err, argument, label, code = 'ERR_INVALID_ARG') {
  assert.ok(err instanceof Error, `${label}: rejected with a non-Error ${show(err)}`)
  assert.equal(err.code, code, `${label}: code ${err.code}, message "${err.message}"`)
  const named = err.message.includes(`\`${argument}\``)
  assert.ok(named, `${label}: message "${err.message}" does not name \`${argument}\``)
}

/** `call()` returns a promise (no synchronous throw) that rejects with a coded error. */
async function refused(call, argument, label) {
  let promise
  assert.doesNotThrow(() => {
    promise = call()
  }, `${label}: threw synchronously instead of rejecting`)
  assert.ok(promise instanceof Promise, `${label}: did not return a promise`)
  const { error } = await outcome(promise, label)
  assert.ok(error, `${label}: was accepted`)
  assertCoded(error, argument, label)
}

/** Runs `check(value, label)` on every case, then fails once listing every failed case. */
async function everyCase(cases, check) {
  const failures = []
  for (const [label, value] of cases) {
    try {
      await check(value, label)
    } catch (err) {
      failures.push(`${label}: ${err.message.split('\n')[0]}`)
    }
  }
  assert.deepEqual(failures, [])
}

function openStore(options = {}) {
  const created = new RedisStore({ secret: SECRET, url: server.url, commandTimeout: 1000,
    ...options })
  opened.push(created)
  return created
}

/** Calls of store commands (GET, SET, EVAL, ...) Redis has seen since the last reset. */
async function storeCommandCalls() {
  const info = await client.info('commandstats')
  let calls = 0
  for (const line of info.split(/\r?\n/)) {
    const match = /^cmdstat_(\w+):calls=(\d+)/.exec(line)
    if (match && !HARNESS_COMMANDS.has(match[1])) calls += Number(match[2])
  }
  return calls
}

async function resetRedis() {
  await client.flushAll()
  await client.sendCommand(['CONFIG', 'RESETSTAT'])
}

/** Nothing was written, and the store sent Redis no command at all (PING aside). */
async function assertRedisUntouched() {
  assert.equal(await storeCommandCalls(), 0, 'a refused call reached Redis')
  assert.deepEqual(await client.keys('*'), [], 'a refused call wrote to Redis')
}

function cookieFor(sid, secret = SECRET) {
  return `connect.sid=s%3A${encodeURIComponent(cookieSignature.sign(sid, secret))}`
}

async function sortedKeys() {
  return (await client.keys('*')).sort()
}

// ---------------------------------------------------------------------------------------

describe('sign / unsign with hostile input', () => {
  it('sign refuses wrong types with ERR_INVALID_ARG naming the argument', TEST, () => {
    for (const [label, bad] of WRONG_TYPES) {
      assert.throws(() => sign(bad, 'k'), { code: 'ERR_INVALID_ARG', message: /`value`/ }, label)
      assert.throws(() => sign('v', bad), { code: 'ERR_INVALID_ARG', message: /`secret`/ }, label)
    }
  })

  it('unsign gives false for wrong input types and never throws', TEST, () => {
    const signed = cookieSignature.sign('v', 'k')
    const inputs = [...WRONG_TYPES, ['a Buffer of a signed value', Buffer.from(signed)],
      ['a boxed signed value', new String(signed)]]
    for (const [label, bad] of inputs) {
      assert.equal(unsign(bad, 'k'), false, label)
      assert.equal(unsign(bad, ['x', 'k']), false, label)
    }
  })

  it('unsign refuses wrong secrets with ERR_INVALID_ARG naming `secret`', TEST, () => {
    const bad = [...WRONG_TYPES.filter(([, v]) => !Array.isArray(v)), ['[]', []],
      ['[null]', [null]], ['[Symbol]', [Symbol('k')]], ['["k", 1]', ['k', 1]]]
    for (const [label, secret] of bad) {
      assert.throws(() => unsign('v.sig', secret), (err) => {
        assertCoded(err, 'secret', label)
        return true
      }, `${label}: accepted as a secret`)
    }
  })

  it('sign and unsign handle 5 MB values and secrets like cookie-signature', TEST, () => {
    const signed = sign(FIVE_MB, 'k')
    assert.equal(signed, cookieSignature.sign(FIVE_MB, 'k'))
    assert.equal(unsign(signed, 'k'), FIVE_MB)
    assert.equal(sign('v', FIVE_MB), cookieSignature.sign('v', FIVE_MB))
    assert.equal(unsign(cookieSignature.sign('v', FIVE_MB), ['k', FIVE_MB]), 'v')
    assert.equal(unsign(FIVE_MB, 'k'), false)
    assert.equal(unsign(`${FIVE_MB}.${FIVE_MB}`, 'k'), false)
    assert.equal(unsign(signed.slice(0, -1), 'k'), false)
  })

  it('NUL bytes and unicode are signed and verified like cookie-signature', TEST, () => {
    const values = ['\0', 'a\0b', '\0'.repeat(100), '😀𝄞', 'ключ\u202e', '\uFFFD', '\u0000.\u0000']
    for (const value of values) {
      for (const secret of ['k', 'k\0', '\0', '🔑']) {
        const signed = cookieSignature.sign(value, secret)
        assert.equal(sign(value, secret), signed, show([value, secret]))
        assert.equal(unsign(signed, secret), value, show([value, secret]))
        assert.equal(unsign(`${signed}\0`, secret), false, show([value, secret]))
      }
    }
  })

  it('lone surrogates never throw in sign or unsign', TEST, () => {
    const lone = ['\uD800', 'a\uDFFFb', '\uDBFF\uDBFF', `x\uDC00.${'A'.repeat(43)}`]
    for (const value of lone) {
      const signed = sign(value, 'k')
      assert.equal(typeof signed, 'string', show(value))
      assert.ok([value, value.toWellFormed()].includes(unsign(signed, 'k')), show(value))
      assert.equal(unsign(value, ['k', value]), false, show(value))
      assert.equal(typeof sign('v', value), 'string', show(value))
    }
  })
})

describe('RedisStore with hostile input', () => {
  before(async () => {
    server = await RedisServer.start()
    client = await server.client()
    store = openStore()
  })

  after(async () => {
    await Promise.all(opened.map((s) => s.close()))
    if (client) await client.close()
    if (server) await server.stop()
  })

  describe('constructor options', () => {
    const BAD_OPTIONS = {
      secret: [undefined, null, 42, '', [], [''], ['ok', 7], Symbol('s'), {}, Buffer.from('k'),
        () => 'k'],
      encryptionKeys: ['a key', [], [42], [null], [Symbol('k')], {}, [Buffer.alloc(16)],
        [Buffer.alloc(33)], ['***not base64***'], [Buffer.alloc(32), Buffer.alloc(1)]],
      url: [42, '', null, Symbol('u'), {}, ['redis://x'], 'http://127.0.0.1:1', FIVE_MB,
        'redis://[::1'],
      ttl: [0, -1, NaN, Infinity, '60', Symbol('t'), {}, null],
      prefix: [42, null, Symbol('p'), {}, []],
      cookieName: ['', 42, null, Symbol('c')],
      disableTouch: ['yes', 1, null, Symbol('d')],
      disableTTL: ['no', 0, {}],
      serializer: [null, {}, { stringify: JSON.stringify }, 'JSON', 42],
      maxSessionBytes: [0, -1, 1.5, NaN, Infinity, 2 ** 60, '1024', null, Symbol('m')],
      commandTimeout: [0, -5, 0.5, NaN, '100', {}],
      connectTimeout: [0, Infinity, '1'],
      reconnectMaxDelay: [0, -1, 1e300],
      scanCount: [0, 1.5, '10'],
      busyPollMicros: [-1, 1.5, 1001, NaN, '100', null],
      cluster: [{}, [], true, null],
    }

    function checkOptionError(options, option) {
      let created
      try {
        created = new RedisStore(options)
      } catch (err) {
        assert.ok(err instanceof TypeError, `${err.constructor.name} is not a TypeError ` +
          `("${err.message}")`)
        assertCoded(err, option, 'constructor', 'ERR_INVALID_OPTION')
        return
      }
      opened.push(created)
      assert.fail('the store was constructed')
    }

    it('refuses options that are not an object', TEST, async () => {
      const cases = [['no options', undefined], ['null', null], ['a number', 42],
        ['a string', SECRET], ['a Symbol', Symbol('o')], ['a function', () => ({})]]
      await everyCase(cases, (options) => checkOptionError(options, 'options'))
    })

    for (const [option, values] of Object.entries(BAD_OPTIONS)) {
      it(`refuses a bad \`${option}\` with a TypeError ERR_INVALID_OPTION`, TEST, async () => {
        const cases = values.map((value) => [show(value), value])
        await everyCase(cases, (value) => checkOptionError({ secret: SECRET, url: server.url,
          [option]: value }, option))
      })
    }

    it('accepts NUL, unicode, lone surrogates and 5 MB in secret / prefix', TEST, async () => {
      const odd = openStore({ secret: ['s\0\uD800😀', FIVE_MB], prefix: 'p\0😀:' })
      await within(odd.set('odd-sid', { ok: 1 }), 'set')
      assert.deepEqual(await within(odd.get('odd-sid'), 'get'), { ok: 1 })
      assert.deepEqual(await within(odd.ids(), 'ids'), ['odd-sid'])
      await within(odd.clear(), 'clear')
    })
  })

  describe('sids', () => {
    beforeEach(resetRedis)

    const SID_CALLS = {
      get: (sid) => store.get(sid),
      set: (sid) => store.set(sid, { cookie: {}, n: 1 }),
      touch: (sid) => store.touch(sid, { cookie: {} }),
      destroy: (sid) => store.destroy(sid),
      destroySession: (sid) => store.destroySession(sid),
    }

    for (const [method, call] of Object.entries(SID_CALLS)) {
      it(`${method} refuses every wrong-typed or invalid sid before Redis`, TEST, async () => {
        const cases = [...WRONG_TYPES, ...BAD_SID_STRINGS]
        await everyCase(cases, (sid, label) => refused(() => call(sid), 'sid', label))
        await assertRedisUntouched()
      })
    }

    it('accepts 256-byte and unicode sids under the literal key', TEST, async () => {
      const sids = ['é'.repeat(128), 'a'.repeat(256), '😀'.repeat(64), 'ключ', 'a b',
        'a"b\'c', '\u200b', '\uFFFD', 'x\u202e']
      for (const sid of sids) {
        await within(store.set(sid, { sid }), show(sid))
        assert.equal(await client.exists(`session:${sid}`), 1, show(sid))
        assert.deepEqual(await within(store.get(sid), show(sid)), { sid })
      }
      assert.deepEqual((await within(store.ids(), 'ids')).sort(), [...sids].sort())
    })

    it('stores a sid with glob characters literally', TEST, async () => {
      const globs = ['*', '?', '[', ']', 'a*', 'a?c', '[abc]', 'a[b-z]c', '\\*', 'a*b?[c]']
      const sids = [...globs, 'abc', 'b']
      for (const sid of sids) await within(store.set(sid, { sid }), show(sid))
      assert.deepEqual(await sortedKeys(), sids.map((sid) => `session:${sid}`).sort())
      for (const sid of sids) {
        assert.deepEqual(await within(store.get(sid), show(sid)), { sid }, show(sid))
      }
      assert.equal(await within(store.get('a?'), 'get a?'), null)
      const gone = ['*', '[abc]', 'a?c']
      for (const sid of gone) await within(store.destroy(sid), `destroy ${sid}`)
      for (const sid of sids) {
        const expected = gone.includes(sid) ? null : { sid }
        assert.deepEqual(await within(store.get(sid), show(sid)), expected, show(sid))
      }
    })

    describe('a sid with a lone surrogate never reaches another sid\'s session', () => {
      const OTHER = 'sid-\uFFFD'
      const LONE = [['a high surrogate', 'sid-\uD800'], ['a low surrogate', 'sid-\uDFFF']]

      beforeEach(() => within(store.set(OTHER, { owner: 'other' }), 'seed'))

      async function checkOther() {
        assert.deepEqual(await within(store.get(OTHER), 'get other'), { owner: 'other' },
          `the session of ${show(OTHER)} was changed`)
      }

      it('get is refused or finds nothing', TEST, async () => {
        await everyCase(LONE, async (sid, label) => {
          const read = await outcome(store.get(sid), label)
          if (read.error) assertCoded(read.error, 'sid', label)
          else assert.equal(read.value, null, `get(${show(sid)}) read ${show(read.value)}`)
        })
      })

      it('set is refused or writes a key of its own', TEST, async () => {
        await everyCase(LONE, async (sid, label) => {
          const write = await outcome(store.set(sid, { owner: 'intruder' }), label)
          if (write.error) assertCoded(write.error, 'sid', label)
          await checkOther()
        })
      })

      it('destroy is refused or removes nothing else', TEST, async () => {
        await everyCase(LONE, async (sid, label) => {
          const removal = await outcome(store.destroy(sid), label)
          if (removal.error) assertCoded(removal.error, 'sid', label)
          await checkOther()
        })
      })
    })
  })

  describe('sessions', () => {
    beforeEach(resetRedis)

    function circular() {
      const a = { cookie: {} }
      a.b = { c: [a] }
      return a
    }

    const UNSERIALISABLE = [
      ['a circular session', circular()], ['a BigInt', { n: 1n }],
      ['a nested BigInt', { list: [{ deep: 2n }] }],
      ['a throwing toJSON', { toJSON() { throw new Error('toJSON boom') } }],
      ['a throwing getter', { get cookie() { throw new Error('getter boom') } }],
      ['a throwing Proxy', new Proxy({}, { ownKeys() { throw new Error('proxy boom') } })],
      ['a toJSON giving undefined', { toJSON: () => undefined }],
      ['5 MB of data', { cookie: {}, blob: FIVE_MB }],
    ]

    it('set refuses a session that is not an object, writing nothing', TEST, async () => {
      await everyCase(NOT_OBJECTS, (session, label) =>
        refused(() => store.set('sid-1', session), 'session', label))
      await assertRedisUntouched()
    })

    it('set refuses a session that cannot be serialised, writing nothing', TEST, async () => {
      await everyCase(UNSERIALISABLE, (session, label) =>
        refused(() => store.set('sid-1', session), 'session', label))
      await assertRedisUntouched()
    })

    it('the 5 MB refusal names maxSessionBytes', TEST, async () => {
      const { error } = await outcome(store.set('sid-1', { blob: FIVE_MB }), 'set 5 MB')
      assertCoded(error, 'session', 'set 5 MB')
      assert.match(error.message, /maxSessionBytes/)
    })

    it('maxSessionBytes counts UTF-8 bytes, not characters', TEST, async () => {
      const small = openStore({ maxSessionBytes: 64 })
      const fits = [['64 ASCII bytes', 'x'.repeat(56)], ['64 bytes of é', 'é'.repeat(28)]]
      const over = [['65 ASCII bytes', 'x'.repeat(57)], ['66 bytes of é', 'é'.repeat(29)],
        ['68 bytes in 40 chars of emoji', '😀'.repeat(15)]]
      await everyCase(over, (s, label) => refused(() => small.set('s', { s }), 'session', label))
      await assertRedisUntouched()
      for (const [label, s] of fits) {
        await within(small.set(label, { s }), label)
        assert.deepEqual(await within(small.get(label), label), { s })
      }
    })

    it('strings with NUL, astral characters and lone surrogates round-trip', TEST, async () => {
      const session = { cookie: {}, nul: 'a\0b', astral: '😀𝄞', lone: '\uD800x\uDFFF',
        rtl: '\u202e', big: 'é'.repeat(256 * 1024), list: ['\0', '\uDBFF', { k: '\uDC00' }] }
      await within(store.set('round-trip', session), 'set')
      assert.deepEqual(await within(store.get('round-trip'), 'get'), session)
    })

    it('set and touch refuse a cookie.expires of a wrong type with a code', TEST, async () => {
      await within(store.set('exists', { cookie: {} }), 'seed')
      const calls = [
        ['set, a Symbol', () => store.set('sid-1', { cookie: { expires: Symbol('e') } })],
        ['touch, a Symbol', () => store.touch('exists', { cookie: { expires: Symbol('e') } })],
        ['touch, a BigInt', () => store.touch('exists', { cookie: { expires: 10n } })],
      ]
      await everyCase(calls, async (call, label) => {
        const result = await outcome(call(), label)
        if (result.error) assertCoded(result.error, 'session', label)
      })
      assert.deepEqual(await within(store.get('exists'), 'get'), { cookie: {} })
    })

    it('touch with a session of a wrong type creates no key', TEST, async () => {
      await everyCase(NOT_OBJECTS, async (session, label) => {
        const result = await outcome(store.touch('missing', session), label)
        if (result.error) assertCoded(result.error, 'session', label)
        else assert.equal(result.value, undefined, label)
      })
      assert.deepEqual(await client.keys('*'), [])
    })

    it('touch with a session of a wrong type keeps the stored session', TEST, async () => {
      await within(store.set('kept', { v: 1 }), 'seed')
      await everyCase(NOT_OBJECTS, async (session, label) => {
        await outcome(store.touch('kept', session), label)
        assert.deepEqual(await within(store.get('kept'), label), { v: 1 }, label)
      })
    })

    it('a ttl function returning a non-number is refused naming `ttl`', TEST, async () => {
      const cases = [['a string', '60'], ['a Symbol', Symbol('t')], ['NaN', NaN],
        ['undefined', undefined], ['an object', {}]]
      await everyCase(cases, (ttl, label) => {
        const timed = openStore({ ttl: () => ttl })
        return refused(() => timed.set('sid-1', { a: 1 }), 'ttl', label)
      })
      await assertRedisUntouched()
    })
  })

  describe('callbacks', () => {
    beforeEach(resetRedis)

    /** Starts a callback call; resolves with the callback's arguments once it was called. */
    function viaCallback(start, label) {
      let calls = 0
      let returned
      const called = new Promise((resolve) => {
        returned = start((...args) => {
          calls += 1
          resolve(args)
        })
      })
      const synchronous = calls > 0
      return within(called, label).then(async (args) => {
        await new Promise((resolve) => setImmediate(resolve))
        assert.equal(returned, undefined, `${label}: returned ${show(returned)}`)
        assert.equal(synchronous, false, `${label}: callback called synchronously`)
        assert.equal(calls, 1, `${label}: callback called ${calls} times`)
        return args
      })
    }

    function selfReferencing() {
      const a = {}
      a.a = a
      return a
    }

    it('a callback receives the refusal as its first and only argument', TEST, async () => {
      const cases = [
        ['get(42)', (cb) => store.get(42, cb), 'sid'],
        ['get("")', (cb) => store.get('', cb), 'sid'],
        ['set(5 MB sid)', (cb) => store.set(FIVE_MB, {}, cb), 'sid'],
        ['set(null session)', (cb) => store.set('sid-1', null, cb), 'session'],
        ['set(circular)', (cb) => store.set('sid-1', selfReferencing(), cb), 'session'],
        ['touch(Symbol)', (cb) => store.touch(Symbol('s'), {}, cb), 'sid'],
        ['destroy(undefined)', (cb) => store.destroy(undefined, cb), 'sid'],
        ['destroy(NUL)', (cb) => store.destroy('a\0b', cb), 'sid'],
      ]
      const labelled = cases.map(([label, start, argument]) => [label, { start, argument }])
      await everyCase(labelled, async ({ start, argument }, label) => {
        const args = await viaCallback(start, label)
        assert.equal(args.length, 1, `${label}: callback got ${args.length} arguments`)
        assertCoded(args[0], argument, label)
      })
      await assertRedisUntouched()
    })

    it('a callback receives (null, value) on success', TEST, async () => {
      assert.deepEqual(await viaCallback((cb) => store.get('none', cb), 'get'), [null, null])
      assert.deepEqual(await viaCallback((cb) => store.set('cb', { a: 1 }, cb), 'set'),
        [null, undefined])
      assert.deepEqual(await viaCallback((cb) => store.ids(cb), 'ids'), [null, ['cb']])
      assert.deepEqual(await viaCallback((cb) => store.length(cb), 'length'), [null, 1])
      assert.deepEqual(await viaCallback((cb) => store.all(cb), 'all'),
        [null, [{ a: 1, id: 'cb' }]])
      assert.deepEqual(await viaCallback((cb) => store.clear(cb), 'clear'), [null, undefined])
      assert.deepEqual(await client.keys('*'), [])
    })

    it('a callback that is not a function falls back to the promise', TEST, async () => {
      await within(store.set('p', { a: 1 }), 'seed')
      const notFunctions = [['a number', 42], ['a string', 'cb'], ['an object', {}],
        ['null', null], ['a Symbol', Symbol('cb')], ['an array', []]]
      await everyCase(notFunctions, async (cb, label) => {
        assert.deepEqual(await within(store.get('p', cb), label), { a: 1 })
        assert.equal(await within(store.length(cb), label), 1)
        assert.deepEqual(await within(store.ids(cb), label), ['p'])
        assert.deepEqual(await within(store.all(cb), label), [{ a: 1, id: 'p' }])
        const { error } = await outcome(store.get(42, cb), label)
        assertCoded(error, 'sid', label)
      })
    })
  })

  describe('all / length / ids / clear under a prefix with glob characters', () => {
    beforeEach(resetRedis)

    const PREFIXES = [
      ['a*[b]?:', ['aXbY:1', 'a*b?:1', 'ab:1', 'a*[b]?', 'A*[b]?:1', 'session:1']],
      ['b\\*:', ['b\\X:1', 'b*:1', 'bX:1', 'b\\:1', 'session:1']],
    ]

    for (const [prefix, decoys] of PREFIXES) {
      it(`sees and clears only keys under the literal prefix ${prefix}`, TEST, async () => {
        const globbed = openStore({ prefix })
        for (const key of decoys) await client.set(key, 'not a session')
        const sids = ['s1', 's?2', '*']
        for (const sid of sids) {
          await within(globbed.set(sid, { sid }), show(sid))
          assert.equal(await client.exists(`${prefix}${sid}`), 1, `${prefix}${sid} not literal`)
        }
        assert.deepEqual((await within(globbed.ids(), 'ids')).sort(), [...sids].sort())
        assert.equal(await within(globbed.length(), 'length'), sids.length)
        const all = await within(globbed.all(), 'all')
        assert.deepEqual(all.map((s) => s.id).sort(), [...sids].sort())
        await within(globbed.clear(), 'clear')
        assert.deepEqual(await within(globbed.ids(), 'ids after clear'), [])
        assert.equal(await within(globbed.length(), 'length after clear'), 0)
        assert.deepEqual(await within(globbed.all(), 'all after clear'), [])
        for (const key of decoys) {
          assert.equal(await client.get(key), 'not a session', `clear removed ${show(key)}`)
        }
      })
    }
  })

  describe('getSessionFromRawCookie / getUserIdFromCookie', () => {
    const SID = 'cookie-sid-0123456789'

    before(async () => {
      await resetRedis()
      await within(store.set(SID, { cookie: {}, userId: 'user-7' }), 'seed')
    })

    const valid = () => cookieFor(SID)

    it('finds the session of a correctly signed cookie (control)', TEST, async () => {
      const session = await within(store.getSessionFromRawCookie(`a=1; ${valid()}`), 'raw')
      assert.equal(session.userId, 'user-7')
      const req = { headers: { cookie: valid() } }
      assert.equal(await within(store.getUserIdFromCookie(req), 'userId'), 'user-7')
    })

    it('gives null for raw cookies that are not strings', TEST, async () => {
      await everyCase(WRONG_TYPES, async (raw, label) => {
        assert.equal(await within(store.getSessionFromRawCookie(raw), label), null)
      })
    })

    it('gives null for garbage headers', TEST, async () => {
      const unprefixed = encodeURIComponent(cookieSignature.sign(SID, SECRET))
      const garbage = [
        ['5 MB of junk', FIVE_MB], ['a valid cookie after 5 MB', `pad=${FIVE_MB}; ${valid()}`],
        ['a valid cookie before 5 MB', `${valid()}; pad=${FIVE_MB}`],
        ['5 MB of pairs', 'a=b; '.repeat(1024 * 1024)], ['a NUL', '\0'],
        ['a NUL in the name', valid().replace('connect', 'connect\0')],
        ['a NUL after the value', `${valid()}\0`],
        ['a signed sid with NUL', cookieFor('a\0b')], ['an escaped NUL', 'connect.sid=s%3A%00'],
        ['lone surrogates', 'connect.sid=s:\uD800.\uDC00'],
        ['a lone surrogate after the value', `${valid()}\uD800`],
        ['surrogates only', '\uDFFF\uD800'], ['s%3A and nothing', 'connect.sid=s%3A'],
        ['a cut escape', 'connect.sid=s%3'], ['a lone %', 'connect.sid=s%'],
        ['bad UTF-8 escapes', 'connect.sid=s%3A%FF%FE.%C0%AF'],
        ['a bad hex escape', `connect.sid=s%3A${SID}.%ZZ`],
        ['an unsigned sid', `connect.sid=s%3A${SID}`],
        ['no s: prefix', `connect.sid=${unprefixed}`],
        ['another secret', cookieFor(SID, 'another secret')],
        ['another cookie name', valid().replace('connect.sid', 'connect.sid2')],
        ['an empty signed sid', cookieFor('')],
        ['a 300-byte signed sid', cookieFor('a'.repeat(300))],
        ['a signed glob sid', cookieFor('*')], ['a signed sid with a newline', cookieFor('a\nb')],
        ['emoji junk', '😀=😀; connect.sid=😀'], ['separators', ';;;===;;'],
        ['an open quote', 'connect.sid="s%3A'], ['an empty string', ''],
      ]
      await everyCase(garbage, async (raw, label) => {
        assert.equal(await within(store.getSessionFromRawCookie(raw), label), null)
      })
    })

    it('getUserIdFromCookie gives null for hostile requests', TEST, async () => {
      const requests = [...WRONG_TYPES, ['headers null', { headers: null }],
        ['headers a number', { headers: 42 }], ['cookie a number', { headers: { cookie: 42 } }],
        ['cookie an array', { headers: { cookie: [valid()] } }],
        ['cookie a Symbol', { headers: { cookie: Symbol('c') } }],
        ['cookie 5 MB', { headers: { cookie: FIVE_MB } }],
        ['cookie with lone surrogates', { headers: { cookie: 'connect.sid=s:\uDFFF' } }]]
      await everyCase(requests, async (req, label) => {
        assert.equal(await within(store.getUserIdFromCookie(req), label), null)
      })
    })
  })

  describe('saveSession', () => {
    beforeEach(resetRedis)

    /** A request as express-session prepares it, whose save goes to the real store. */
    function fakeRequest() {
      const calls = { regenerate: 0 }
      const session = {
        id: 'before-login',
        regenerate(cb) {
          calls.regenerate += 1
          this.id = `after-login-${calls.regenerate}`
          setImmediate(cb)
        },
        save(cb) {
          store.set(this.id, { cookie: {}, userId: this.userId }, cb)
        },
      }
      return { req: { session }, calls }
    }

    it('refuses a request without a usable session, naming `req`', TEST, async () => {
      const requests = [...WRONG_TYPES, ['an empty object', {}], ['a null session',
        { session: null }], ['regenerate not a function', { session: { regenerate: 'no' } }]]
      await everyCase(requests, (req, label) =>
        refused(() => store.saveSession(req, 'user-1'), 'req', label))
      await assertRedisUntouched()
    })

    it('refuses a userId that is not a non-empty string, naming `userId`', TEST, async () => {
      const ids = [...WRONG_TYPES, ['an empty string', '']]
      await everyCase(ids, async (userId, label) => {
        const { req, calls } = fakeRequest()
        await refused(() => store.saveSession(req, userId), 'userId', label)
        assert.equal(calls.regenerate, 0, `${label}: the session was regenerated`)
      })
      await assertRedisUntouched()
    })

    it('a 5 MB userId fails with ERR_INVALID_ARG and writes nothing', TEST, async () => {
      const { req } = fakeRequest()
      await refused(() => store.saveSession(req, FIVE_MB), 'session', '5 MB userId')
      assert.deepEqual(await client.keys('*'), [])
    })

    it('a userId with NUL, emoji or a lone surrogate is saved as given', TEST, async () => {
      for (const userId of ['u\0', '😀', 'u\uD800', '\uDFFF']) {
        const { req } = fakeRequest()
        await within(store.saveSession(req, userId), show(userId))
        const saved = await within(store.get(req.session.id), show(userId))
        assert.equal(saved.userId, userId)
        const cookie = { headers: { cookie: cookieFor(req.session.id) } }
        assert.equal(await within(store.getUserIdFromCookie(cookie), show(userId)), userId)
      }
    })
  })

  describe('a closed store', () => {
    it('answers every call with a coded error and never hangs', TEST, async () => {
      const closed = openStore()
      await within(closed.close(), 'close')
      await within(closed.close(), 'second close')
      const valid = [['get', () => closed.get('s')], ['set', () => closed.set('s', {})],
        ['ids', () => closed.ids()], ['clear', () => closed.clear()],
        ['touch', () => closed.touch('s', {})], ['cookie', () =>
          closed.getSessionFromRawCookie(cookieFor('s'))]]
      await everyCase(valid, async (call, label) => {
        const { error } = await outcome(call(), label)
        assert.equal(error && error.code, 'ERR_CLOSED', label)
      })
      await refused(() => closed.get(Symbol('s')), 'sid', 'closed get(Symbol)')
      await refused(() => closed.set('s', 1n), 'session', 'closed set(BigInt)')
    })
  })
})

it('recorded no unhandled rejection and no uncaught exception', async () => {
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.deepEqual(recorded.map(([kind, error]) => `${kind}: ${show(error)}`), [])
})
