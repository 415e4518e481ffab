'use strict'

// Redis going away and coming back: bounded errors, disconnect/connect events, and
// reconnection in the background without any call to the store.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { RedisStore, sign } = require('..')
const { RedisServer } = require('./helpers/redis-server')

const session = (extra) => ({ cookie: { originalMaxAge: null }, ...extra })

describe('when Redis fails', () => {
  let server
  let store
  const events = []

  before(async () => {
    server = await RedisServer.start()
    store = new RedisStore({ url: server.url, secret: 's', commandTimeout: 1000 })
    store.on('connect', () => events.push(['connect', Date.now()]))
    store.on('disconnect', () => events.push(['disconnect', Date.now()]))
    await once(store, 'connect')
  })

  after(async () => {
    await store.close()
    await server.stop()
  })

  it('emits disconnect within a second of the loss', async () => {
    await store.set('kept', session({ v: 1 }))
    const killedAt = Date.now()
    await server.kill()
    const [, at] = await waitForEvent(events, 'disconnect', 3000)
    assert.ok(at - killedAt < 1000, `disconnect after ${at - killedAt} ms`)
  })

  it('every call during the outage settles with an Error in bounded time', async () => {
    const started = Date.now()
    const calls = [
      store.get('kept'),
      store.set('x', session()),
      store.destroy('x'),
      store.touch('x', session()),
      store.length(),
      store.ids(),
      store.all(),
      store.clear(),
      store.getSessionFromRawCookie(signedCookie('abc')),
    ]
    const outcomes = await Promise.allSettled(calls)
    const elapsed = Date.now() - started
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected')
      assert.ok(outcome.reason instanceof Error)
      assert.match(outcome.reason.code, /^ERR_REDIS/)
    }
    assert.ok(elapsed < 1500, `settled after ${elapsed} ms`)
  })

  it('callbacks receive the error too', async () => {
    const err = await new Promise((resolve) => store.get('kept', (e) => resolve(e)))
    assert.match(err.code, /^ERR_REDIS/)
  })

  it('reconnects by itself and emits connect within a second of Redis being back', async () => {
    const connectsBefore = events.filter(([name]) => name === 'connect').length
    await server.restart()
    const backAt = Date.now()
    await waitForEvent(events, 'connect', 3000, connectsBefore + 1)
    const at = events.filter(([name]) => name === 'connect').at(-1)[1]
    assert.ok(at - backAt < 1000, `connect after ${at - backAt} ms`)

    await store.set('after', session({ v: 2 }))
    assert.equal((await store.get('after')).v, 2)
  })
})

describe('when Redis is not there at start', () => {
  it('calls fail within the timeout, and the store connects once Redis starts', async () => {
    const server = await RedisServer.start()
    await server.kill()
    const store = new RedisStore({ url: server.url, secret: 's', commandTimeout: 500 })
    const started = Date.now()
    await assert.rejects(store.get('a'), (err) => err.code === 'ERR_REDIS')
    assert.ok(Date.now() - started < 1000)

    const connected = once(store, 'connect')
    await server.restart()
    await connected
    assert.equal(await store.get('a'), null)
    await store.close()
    await server.stop()
  })
})

function signedCookie(sid) {
  return `connect.sid=${encodeURIComponent(`s:${sign(sid, 's')}`)}`
}

async function waitForEvent(events, name, ms, count = 1) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const matching = events.filter(([event]) => event === name)
    if (matching.length >= count) return matching[count - 1]
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`no ${name} event within ${ms} ms`)
}
