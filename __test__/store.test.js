'use strict'

// The Store contract, method by method, against a real redis-server; what the store wrote is
// checked with an independent client (node-redis).

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { RedisStore } = require('..')
const { RedisServer } = require('./helpers/redis-server')

const SECRET = 'keyboard cat'

function session(extra = {}, cookie = {}) {
  return { cookie: { originalMaxAge: null, httpOnly: true, path: '/', ...cookie }, ...extra }
}

async function connected(options) {
  const store = new RedisStore({ secret: SECRET, ...options })
  await once(store, 'connect')
  return store
}

describe('RedisStore over a real Redis', () => {
  let server
  let raw
  let store

  before(async () => {
    server = await RedisServer.start()
    raw = await server.client()
    store = await connected({ url: server.url })
  })

  after(async () => {
    await store.close()
    await raw.quit()
    await server.stop()
  })

  it('set then get returns the session, stored encrypted under prefix + sid', async () => {
    await store.set('sid-1', session({ userId: '64f123456789abcdef123456' }))
    const loaded = await store.get('sid-1')
    assert.equal(loaded.userId, '64f123456789abcdef123456')
    assert.equal(loaded.cookie.httpOnly, true)

    const stored = (await rawBuffer(raw, 'session:sid-1')).toString('latin1')
    assert.ok(!stored.includes('64f123456789abcdef123456'))
    assert.ok(!stored.includes('cookie'))
  })

  it('stores a versioned envelope of JSON length + 33 bytes', async () => {
    const sess = session({ userId: 'u' })
    await store.set('sid-env', sess)
    const value = await rawBuffer(raw, 'session:sid-env')
    assert.equal(value[0], 1)
    assert.equal(value.length, JSON.stringify(sess).length + 33)
  })

  it('every write uses a fresh nonce', async () => {
    await store.set('sid-nonce', session({ n: 1 }))
    const first = await rawBuffer(raw, 'session:sid-nonce')
    await store.set('sid-nonce', session({ n: 1 }))
    const second = await rawBuffer(raw, 'session:sid-nonce')
    assert.notDeepEqual(first.subarray(5, 17), second.subarray(5, 17))
  })

  it('get of a missing session is null', async () => {
    assert.equal(await store.get('never-written'), null)
  })

  it('callbacks are node-style and the promise is not returned', async () => {
    const result = await new Promise((resolve, reject) => {
      const returned = store.set('sid-cb', session({ a: 1 }), (err) => {
        if (err) return reject(err)
        store.get('sid-cb', (getErr, sess) => resolve({ returned, getErr, sess }))
      })
    })
    assert.equal(result.returned, undefined)
    assert.equal(result.getErr, null)
    assert.equal(result.sess.a, 1)
  })

  it('uses the ttl option (seconds) when the cookie has no expires', async () => {
    await store.set('sid-ttl', session())
    const pttl = await raw.pTTL('session:sid-ttl')
    assert.ok(pttl > 86_390_000 && pttl <= 86_400_000, `pttl ${pttl}`)
  })

  it('uses cookie.expires to the millisecond, as a Date or as JSON', async () => {
    const expires = new Date(Date.now() + 5_000)
    await store.set('sid-exp', session({}, { expires }))
    const fromDate = await raw.pTTL('session:sid-exp')
    assert.ok(fromDate > 4_800 && fromDate <= 5_000, `pttl ${fromDate}`)

    await store.set('sid-exp2', session({}, { expires: expires.toISOString() }))
    const fromString = await raw.pTTL('session:sid-exp2')
    assert.ok(fromString > 4_800 && fromString <= 5_000, `pttl ${fromString}`)
  })

  it('an expired cookie deletes the key instead of writing it', async () => {
    await store.set('sid-dead', session())
    await store.set('sid-dead', session({}, { expires: new Date(Date.now() - 1000) }))
    assert.equal(await raw.exists('session:sid-dead'), 0)
  })

  it('the key really dies with the cookie', async () => {
    await store.set('sid-short', session({}, { expires: new Date(Date.now() + 150) }))
    assert.notEqual(await store.get('sid-short'), null)
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(await store.get('sid-short'), null)
  })

  it('touch renews the TTL of an existing key only', async () => {
    await store.set('sid-touch', session({}, { expires: new Date(Date.now() + 2_000) }))
    await store.touch('sid-touch', session({}, { expires: new Date(Date.now() + 60_000) }))
    const pttl = await raw.pTTL('session:sid-touch')
    assert.ok(pttl > 59_000, `pttl ${pttl}`)

    await store.touch('sid-absent', session({}, { expires: new Date(Date.now() + 60_000) }))
    assert.equal(await raw.exists('session:sid-absent'), 0)
  })

  it('destroy removes the session', async () => {
    await store.set('sid-gone', session())
    await store.destroy('sid-gone')
    assert.equal(await store.get('sid-gone'), null)
    assert.equal(await raw.type('session:sid-gone'), 'hash', 'a tombstone, not the session')
  })

  it('a value copied under another sid does not decrypt and is reported', async () => {
    await store.set('sid-src', session({ userId: 'victim' }))
    const value = await rawBuffer(raw, 'session:sid-src')
    await raw.set('session:sid-copy', value)

    const errors = []
    store.on('error', (err) => errors.push(err))
    try {
      assert.equal(await store.get('sid-copy'), null)
    } finally {
      store.removeAllListeners('error')
    }
    assert.equal(errors.length, 1)
    assert.equal(errors[0].code, 'ERR_DECRYPT')
  })

  it('a tampered value reads as no session, with or without an error listener', async () => {
    await store.set('sid-tamper', session({ userId: 'x' }))
    const value = await rawBuffer(raw, 'session:sid-tamper')
    value[value.length - 1] ^= 1
    await raw.set('session:sid-tamper', value)
    assert.equal(store.listenerCount('error'), 0)
    assert.equal(await store.get('sid-tamper'), null)
  })

  it('a plaintext JSON value (another store) reads as no session', async () => {
    await raw.set('session:sid-plain', JSON.stringify(session({ userId: 'x' })))
    assert.equal(await store.get('sid-plain'), null)
  })
})

describe('listing and clearing only touch the prefix', () => {
  let server
  let raw
  let store

  before(async () => {
    server = await RedisServer.start()
    raw = await server.client()
    store = await connected({ url: server.url, prefix: 'app:s*[1]?:', scanCount: 100 })
  })

  after(async () => {
    await store.close()
    await raw.quit()
    await server.stop()
  })

  it('ids, length, all and clear use only keys under the literal prefix', async () => {
    await raw.set('app:sX1Y:other', 'not ours')
    await raw.set('unrelated', 'not ours')
    for (const sid of ['a', 'b', 'c']) await store.set(sid, session({ sid }))

    assert.deepEqual((await store.ids()).sort(), ['a', 'b', 'c'])
    assert.equal(await store.length(), 3)
    const all = await store.all()
    assert.deepEqual(all.map((s) => [s.id, s.sid]).sort(), [['a', 'a'], ['b', 'b'], ['c', 'c']])

    await store.clear()
    assert.equal(await store.length(), 0)
    assert.equal(await raw.get('app:sX1Y:other'), 'not ours')
    assert.equal(await raw.get('unrelated'), 'not ours')
  })

  it('all, length and ids walk a keyspace of many SCAN steps (scanCount 100)', async () => {
    const many = Array.from({ length: 2500 }, (_, i) => `bulk-${i}`)
    await Promise.all(many.map((sid) => store.set(sid, session({ i: sid }))))
    assert.equal(await store.length(), 2500)
    assert.equal((await store.ids()).length, 2500)
    assert.equal((await store.all()).length, 2500)
    await store.clear()
    assert.equal(await store.length(), 0)
  })

  it('all skips undecryptable values and reports them', async () => {
    await store.set('good', session({ ok: true }))
    await raw.set('app:s*[1]?:bad', 'garbage')
    const errors = []
    store.on('error', (err) => errors.push(err))
    const all = await store.all()
    store.removeAllListeners('error')
    assert.deepEqual(all.map((s) => s.id), ['good'])
    assert.equal(errors[0].code, 'ERR_DECRYPT')
    await store.clear()
  })
})

describe('options', () => {
  let server

  before(async () => {
    server = await RedisServer.start()
  })

  after(async () => {
    await server.stop()
  })

  it('a ttl function decides when the cookie has no expires, and only then', async () => {
    const asked = []
    const ttl = (sess) => {
      asked.push(sess.name)
      return sess.short ? 10 : 100
    }
    const store = await connected({ url: server.url, ttl })
    const raw = await server.client()
    await store.set('f1', session({ name: 'f1', short: true }))
    await store.set('f2', session({ name: 'f2', short: false }))
    await store.set('f3', session({ name: 'f3' }, { expires: new Date(Date.now() + 5_000) }))
    assert.ok((await raw.pTTL('session:f1')) <= 10_000)
    assert.ok((await raw.pTTL('session:f2')) > 10_000)
    assert.ok((await raw.pTTL('session:f3')) <= 5_000)
    assert.deepEqual(asked, ['f1', 'f2'])
    await raw.quit()
    await store.close()
  })

  it('busyPollMicros 0 and 1000 serve calls one at a time and all at once', async () => {
    for (const busyPollMicros of [0, 1000]) {
      const store = await connected({ url: server.url, prefix: `bp${busyPollMicros}:`,
        busyPollMicros })
      for (let i = 0; i < 200; i++) {
        await store.set(`one-${i}`, session({ i }))
        if (i % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
        assert.equal((await store.get(`one-${i}`)).i, i)
      }
      const sids = Array.from({ length: 500 }, (_, i) => `many-${i}`)
      await Promise.all(sids.map((sid, i) => store.set(sid, session({ i }))))
      const read = await Promise.all(sids.map((sid) => store.get(sid)))
      assert.deepEqual(read.map((sess) => sess.i), sids.map((_, i) => i))
      assert.equal(await store.length(), 700)
      await store.close()
    }
  })

  it('calls made by the callbacks of a batch of results are handed over with no wait',
    async () => {
      const native = require('../native.js')
      const store = await connected({ url: server.url, prefix: 'chain:' })
      const flushOps = native.flushOps
      const order = []
      native.flushOps = function (...args) {
        order.push('handed over')
        return flushOps.apply(this, args)
      }
      try {
        await new Promise((resolve, reject) => {
          store.get('first', (err) => {
            if (err) return reject(err)
            order.length = 0
            store.get('second', (secondErr) => (secondErr ? reject(secondErr) : resolve()))
            // Runs once the batch's callbacks are done: the second call must be on its way.
            queueMicrotask(() => order.push('batch done'))
          })
        })
      } finally {
        native.flushOps = flushOps
        await store.close()
      }
      assert.deepEqual(order.slice(0, 2), ['handed over', 'batch done'])
    })

  it('a chain of calls, each made in the callback of the one before, schedules no wait',
    async () => {
      const store = await connected({ url: server.url, prefix: 'chain:' })
      const schedule = global.setImmediate
      let scheduled = 0
      global.setImmediate = (...args) => {
        scheduled++
        return schedule(...args)
      }
      try {
        await new Promise((resolve, reject) => {
          let left = 100
          const next = (err) => {
            if (err) return reject(err)
            if (left-- === 0) return resolve()
            store.get(`link-${left}`, next)
          }
          next(null)
        })
      } finally {
        global.setImmediate = schedule
        await store.close()
      }
      // Only the first call, made outside any callback of the store, waits for the check
      // phase; each later one goes when the batch that led to it is delivered.
      assert.ok(scheduled <= 1, `${scheduled} calls waited for the check phase`)
    })

  it('calls made in separate callbacks of one event-loop turn are handed over together',
    async () => {
      const native = require('../native.js')
      const store = await connected({ url: server.url, prefix: 'turn:' })
      const flushOps = native.flushOps
      const handed = []
      native.flushOps = function (dispatcher, text, records, ...rest) {
        handed.push(records.length)
        return flushOps.call(this, dispatcher, text, records, ...rest)
      }
      try {
        // Three timers due together run in one timers phase, each its own callback (with
        // its own microtask checkpoint), as the request handlers of a busy server do.
        const calls = await new Promise((resolve) => {
          const started = []
          for (let i = 0; i < 3; i++) {
            setTimeout(() => {
              started.push(store.get(`turn-${i}`))
              if (started.length === 3) resolve(started)
            }, 0)
          }
        })
        assert.deepEqual(await Promise.all(calls), [null, null, null])
      } finally {
        native.flushOps = flushOps
        await store.close()
      }
      assert.equal(handed.length, 1, `handed over in ${handed.length} batches`)
    })

  it('disableTouch makes touch a no-op', async () => {
    const store = await connected({ url: server.url, disableTouch: true, ttl: 100 })
    const raw = await server.client()
    await store.set('dt', session())
    await store.touch('dt', session({}, { expires: new Date(Date.now() + 1e9) }))
    assert.ok((await raw.pTTL('session:dt')) <= 100_000)
    await raw.quit()
    await store.close()
  })

  it('disableTTL writes keys without expiry', async () => {
    const store = await connected({ url: server.url, disableTTL: true })
    const raw = await server.client()
    await store.set('nt', session({}, { expires: new Date(Date.now() + 1000) }))
    assert.equal(await raw.pTTL('session:nt'), -1)
    await store.touch('nt', session({}, { expires: new Date(Date.now() + 1000) }))
    assert.equal(await raw.pTTL('session:nt'), -1)
    await raw.quit()
    await store.close()
  })

  it('a custom serializer turns sessions into text before encryption', async () => {
    const calls = []
    const serializer = {
      stringify: (value) => {
        calls.push('stringify')
        return `v1|${JSON.stringify(value)}`
      },
      parse: (text) => {
        calls.push('parse')
        return JSON.parse(text.slice(3))
      },
    }
    const store = await connected({ url: server.url, serializer })
    const raw = await server.client()
    await store.set('ser', session({ userId: 'serialized-user' }))
    assert.equal((await store.get('ser')).userId, 'serialized-user')
    assert.deepEqual(calls, ['stringify', 'parse'])
    const stored = await raw.withTypeMapping({ [36]: Buffer }).get('session:ser')
    assert.ok(!Buffer.from(stored).toString('latin1').includes('serialized-user'))
    await raw.quit()
    await store.close()
  })

  it('explicit encryptionKeys: the first seals, all open', async () => {
    const oldKey = Buffer.alloc(32, 1)
    const newKey = Buffer.alloc(32, 2).toString('base64')
    const before = await connected({ url: server.url, encryptionKeys: [oldKey] })
    await before.set('rot', session({ v: 'old' }))
    await before.close()

    const after = await connected({ url: server.url, encryptionKeys: [newKey, oldKey] })
    assert.equal((await after.get('rot')).v, 'old')
    await after.set('rot2', session({ v: 'new' }))
    await after.close()

    const onlyOld = await connected({ url: server.url, encryptionKeys: [oldKey] })
    assert.equal(await onlyOld.get('rot2'), null)
    await onlyOld.close()
  })

  it('keys derived from secrets survive prepending a new secret', async () => {
    const first = await connected({ url: server.url, secret: 'one' })
    await first.set('der', session({ v: 1 }))
    await first.close()
    const rotated = await connected({ url: server.url, secret: ['two', 'one'] })
    assert.equal((await rotated.get('der')).v, 1)
    await rotated.close()
    const stranger = await connected({ url: server.url, secret: 'three' })
    assert.equal(await stranger.get('der'), null)
    await stranger.close()
  })

  it('REDIS_URL is the default url', async () => {
    process.env.REDIS_URL = server.url
    try {
      const store = await connected({})
      await store.set('env', session({ v: 1 }))
      assert.equal((await store.get('env')).v, 1)
      await store.close()
    } finally {
      delete process.env.REDIS_URL
    }
  })

  it('bad options throw errors that name the option', () => {
    const cases = [
      [{}, 'secret'],
      [{ secret: '' }, 'secret'],
      [{ secret: [] }, 'secret'],
      [{ secret: 's', url: 'http://x' }, 'url'],
      [{ secret: 's', url: 42 }, 'url'],
      [{ secret: 's', encryptionKeys: [Buffer.alloc(16)] }, 'encryptionKeys'],
      [{ secret: 's', encryptionKeys: ['not base64!'] }, 'encryptionKeys'],
      [{ secret: 's', encryptionKeys: [] }, 'encryptionKeys'],
      [{ secret: 's', ttl: -1 }, 'ttl'],
      [{ secret: 's', ttl: 'day' }, 'ttl'],
      [{ secret: 's', prefix: 5 }, 'prefix'],
      [{ secret: 's', cookieName: '' }, 'cookieName'],
      [{ secret: 's', disableTouch: 'yes' }, 'disableTouch'],
      [{ secret: 's', commandTimeout: 0 }, 'commandTimeout'],
    ]
    for (const [options, name] of cases) {
      assert.throws(() => new RedisStore(options), (err) => {
        assert.equal(err.code, 'ERR_INVALID_OPTION', `${name}: ${err.message}`)
        assert.ok(err.message.includes(`\`${name}\``), err.message)
        return true
      })
    }
  })

  it('a password in the url never appears in an error message', () => {
    const err = captureThrow(() => new RedisStore({ secret: 's', url: 'redis://:hunter2@' }))
    if (err) assert.ok(!err.message.includes('hunter2'), err.message)
  })

  it('bad input is refused before Redis is called, with ERR_INVALID_ARG', async () => {
    const store = await connected({ url: server.url, maxSessionBytes: 1000 })
    const raw = await server.client()
    await raw.flushAll()
    const circular = session()
    circular.self = circular
    const attempts = [
      () => store.set('', session()),
      () => store.set('a\nb', session()),
      () => store.set('x'.repeat(300), session()),
      () => store.set(42, session()),
      () => store.set('ok', circular),
      () => store.set('ok', session({ big: 'x'.repeat(2000) })),
      () => store.set('ok', null),
      () => store.get(undefined),
    ]
    for (const attempt of attempts) {
      await assert.rejects(attempt(), (err) => err.code === 'ERR_INVALID_ARG')
    }
    assert.equal(await raw.dbSize(), 0)
    await raw.quit()
    await store.close()
  })

  it('error events are emitted only when someone listens', async () => {
    const store = await connected({ url: server.url })
    const raw = await server.client()
    await raw.set('session:junk', 'junk')
    assert.equal(await store.get('junk'), null)
    const seen = []
    store.on('error', (err) => seen.push(err.code))
    assert.equal(await store.get('junk'), null)
    assert.deepEqual(seen, ['ERR_DECRYPT'])
    await raw.quit()
    await store.close()
  })

  it('close makes later calls fail with ERR_CLOSED', async () => {
    const store = await connected({ url: server.url })
    await store.close()
    await assert.rejects(store.get('x'), (err) => err.code === 'ERR_CLOSED')
    const viaCallback = await new Promise((resolve) => store.set('x', session(), resolve))
    assert.equal(viaCallback.code, 'ERR_CLOSED')
  })
})

function captureThrow(fn) {
  try {
    fn()
    return null
  } catch (err) {
    return err
  }
}

async function rawBuffer(client, key) {
  const reply = await client.withTypeMapping({ [36]: Buffer }).get(key)
  return Buffer.from(reply)
}
