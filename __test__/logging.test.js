'use strict'

// Logging: silent by default; DEBUG=sealed-redis-session* or a `logger` option turns it on;
// no log line ever carries a session id, a secret or session content.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const { once } = require('node:events')
const path = require('node:path')
const { RedisStore } = require('..')
const { RedisServer } = require('./helpers/redis-server')

const ROOT = path.join(__dirname, '..')
const SID = 'sid-that-must-not-be-logged'
const SECRET = 'secret-that-must-not-be-logged'
const PAYLOAD = 'payload-that-must-not-be-logged'

describe('logging', () => {
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

  it('is silent by default', async () => {
    const { stderr } = await scenario({ DEBUG: '' })
    assert.equal(stderr, '')
  })

  it('DEBUG=sealed-redis-session* logs connect and tampering, and no data', async () => {
    const { stderr } = await scenario({ DEBUG: 'express:*,sealed-redis-session*' })
    assert.match(stderr, /sealed-redis-session:debug connected to Redis/)
    assert.match(stderr, /sealed-redis-session:warn a stored session did not decrypt/)
    for (const secret of [SID, SECRET, PAYLOAD]) assert.ok(!stderr.includes(secret), stderr)
  })

  it('a logger option receives warnings of a lost connection and errors of failed calls',
    async () => {
      const lines = []
      const record = (level) => (message) => lines.push(`${level} ${message}`)
      const logger = { debug: record('debug'), warn: record('warn'), error: record('error') }
      const other = await RedisServer.start()
      const store = new RedisStore({ url: other.url, secret: SECRET, logger, commandTimeout: 300 })
      await once(store, 'connect')
      const disconnected = once(store, 'disconnect')
      await other.kill()
      await disconnected
      await assert.rejects(store.get(SID))
      await store.close()
      await other.stop()

      assert.ok(lines.includes('debug connected to Redis'), lines.join('\n'))
      const lost = lines.some((line) => line.startsWith('warn lost the connection'))
      assert.ok(lost, lines.join('\n'))
      assert.ok(lines.some((line) => line.startsWith('error ERR_REDIS')), lines.join('\n'))
      assert.ok(!lines.join('\n').includes(SID))
    })

  it('a logger with only `info` (or `log`) receives every level', async () => {
    const lines = []
    const store = new RedisStore({ url: server.url, secret: SECRET,
      logger: { info: (message) => lines.push(message) } })
    await once(store, 'connect')
    await store.close()
    assert.deepEqual(lines, ['connected to Redis'])
  })

  /** Runs a child process that writes, reads, and reads a tampered value. */
  async function scenario(env) {
    await raw.set(`session:${SID}-tampered`, `garbage ${PAYLOAD}`)
    const script = `
      const { RedisStore } = require(${JSON.stringify(ROOT)})
      const store = new RedisStore({ url: ${JSON.stringify(server.url)},
        secret: ${JSON.stringify(SECRET)} })
      store.once('connect', async () => {
        await store.set(${JSON.stringify(SID)}, { cookie: {}, note: ${JSON.stringify(PAYLOAD)} })
        await store.get(${JSON.stringify(SID)})
        await store.get(${JSON.stringify(`${SID}-tampered`)})
        await store.close()
      })`
    return new Promise((resolve, reject) => {
      const options = { env: { ...process.env, ...env }, timeout: 20_000 }
      execFile(process.execPath, ['-e', script], options, (err, stdout, stderr) => {
        if (err) reject(err)
        else resolve({ stdout, stderr })
      })
    })
  }
})
