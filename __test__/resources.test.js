'use strict'

// Resource hygiene: close() ends every connection and background task (a process that
// closes its store exits by itself), and memory stays flat over a million operations.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const { once } = require('node:events')
const path = require('node:path')
const { RedisStore } = require('..')
const { RedisServer } = require('./helpers/redis-server')

const OPS = Number(process.env.RESOURCE_OPS || 1_000_000)
const CONCURRENCY = 64
const ROOT = path.join(__dirname, '..')

describe('resources', () => {
  let server
  let raw

  before(async () => {
    server = await RedisServer.start()
    raw = await server.client()
  })

  after(async () => {
    await raw.quit()
    await server.stop()
  })

  it('a process that closes its store exits by itself, leaving no connection', async () => {
    const script = `
      const { RedisStore } = require(${JSON.stringify(ROOT)})
      const store = new RedisStore({ url: ${JSON.stringify(server.url)}, secret: 's' })
      store.once('connect', async () => {
        await store.set('exit-test', { cookie: {}, v: 1 })
        await store.get('exit-test')
        await store.close()
      })`
    const started = Date.now()
    const child = spawn(process.execPath, ['-e', script], { stdio: 'inherit' })
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    const [code, signal] = await once(child, 'exit')
    clearTimeout(timer)

    assert.equal(signal, null, 'the process had to be killed: it did not exit by itself')
    assert.equal(code, 0)
    assert.ok(Date.now() - started < 10_000)
    assert.equal(await storeConnections(raw), 0)
  })

  it('close() drops the connection of a store that stays in the process', async () => {
    const store = new RedisStore({ url: server.url, secret: 's' })
    await once(store, 'connect')
    assert.equal(await storeConnections(raw), 1)
    await store.close()
    await waitFor(async () => (await storeConnections(raw)) === 0)
  })

  it(`memory stays flat over ${OPS} operations`, async (t) => {
    const store = new RedisStore({ url: server.url, secret: 's' })
    await once(store, 'connect')
    const session = { cookie: { originalMaxAge: 60_000 }, userId: 'u'.repeat(24) }

    await run(store, session, OPS / 10)
    global.gc?.()
    const warm = process.memoryUsage().rss
    await run(store, session, OPS)
    global.gc?.()
    const end = process.memoryUsage().rss
    await store.close()

    const mb = (bytes) => (bytes / 1e6).toFixed(1)
    t.diagnostic(`RSS after warm-up ${mb(warm)} MB, after ${OPS} ops ${mb(end)} MB`)
    assert.ok(end - warm < 40e6, `RSS grew by ${mb(end - warm)} MB`)
  })
})

/** Runs `ops` operations (half set, half get) from CONCURRENCY loops. */
async function run(store, session, ops) {
  let next = 0
  const loop = async () => {
    while (next < ops) {
      const i = next
      next += 2
      const sid = `mem-${i % 10_000}`
      await store.set(sid, session)
      await store.get(sid)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, loop))
}

/** Client connections other than the inspecting client itself. */
async function storeConnections(raw) {
  const list = await raw.sendCommand(['CLIENT', 'LIST'])
  return list.trim().split('\n').filter((line) => !line.includes('cmd=client|list')).length
}

async function waitFor(check) {
  const deadline = Date.now() + 5000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
