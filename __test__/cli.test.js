'use strict'

// The command-line tool, run as a user would, against sessions a store wrote.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const { once } = require('node:events')
const path = require('node:path')
const { RedisStore } = require('..')
const { RedisServer } = require('./helpers/redis-server')

const BIN = path.join(__dirname, '..', 'bin', 'sealed-redis-session.js')
const SECRET = 'cli secret'

describe('npx sealed-redis-session', () => {
  let server
  let store

  before(async () => {
    server = await RedisServer.start()
    store = new RedisStore({ url: server.url, secret: SECRET })
    await once(store, 'connect')
    const cookie = { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000) }
    await store.set('alice', { cookie, userId: 'alice-id' })
    await store.set('bob', { cookie: {}, userId: 'bob-id' })
    await store.set('carol', { cookie: {}, userId: 'carol-id' })
    await store.destroy('carol')
  })

  after(async () => {
    await store.close()
    await server.stop()
  })

  it('keygen prints a fresh 32-byte base64 key', async () => {
    const [first, second] = await Promise.all([cli(['keygen']), cli(['keygen'])])
    assert.equal(Buffer.from(first.stdout.trim(), 'base64').length, 32)
    assert.notEqual(first.stdout, second.stdout)
  })

  it('inspect shows the TTL and the decrypted session, with a warning', async () => {
    const run = await cli(['inspect', 'alice', '--url', server.url, '--secret', SECRET])
    assert.equal(run.code, 0)
    assert.match(run.stderr, /personal data/)
    assert.match(run.stdout, /state: {3}session/)
    assert.match(run.stdout, /ttl: {5}0h 59m|ttl: {5}1h 0m/)
    assert.match(run.stdout, /"userId": "alice-id"/)
  })

  it('inspect tells a tombstone, a missing session and a wrong secret apart', async () => {
    const args = ['--url', server.url, '--secret', SECRET]
    assert.match((await cli(['inspect', 'carol', ...args])).stdout, /state: {3}tombstone/)
    assert.match((await cli(['inspect', 'nobody', ...args])).stdout, /state: {3}missing/)
    const wrong = await cli(['inspect', 'alice', '--url', server.url, '--secret', 'other'])
    assert.equal(wrong.code, 1)
    assert.match(wrong.stdout, /state: {3}undecryptable/)
    assert.doesNotMatch(wrong.stdout, /alice-id/)
  })

  it('stats counts sessions, tombstones, TTL spread and sealing keys, with progress', async () => {
    const run = await cli(['stats'], { REDIS_URL: server.url, SESSION_SECRET: SECRET })
    assert.equal(run.code, 0)
    assert.match(run.stdout, /sessions: {4}2\n/)
    assert.match(run.stdout, /tombstones: {2}1 /)
    assert.match(run.stdout, /< 1 hour {7}1\n/)
    assert.match(run.stdout, /< 1 day {8}1\n/)
    assert.match(run.stdout, /sealing keys:\n {2}[0-9a-f]{8} +2\n/)
    assert.match(run.stderr, /scanned \d+ keys/)
  })

  it('an unknown command prints the usage and fails', async () => {
    const run = await cli(['frobnicate'])
    assert.equal(run.code, 2)
    assert.match(run.stderr, /usage: sealed-redis-session/)
  })
})

function cli(args, env = {}) {
  return new Promise((resolve) => {
    const options = { env: { ...process.env, ...env }, timeout: 20_000 }
    execFile(process.execPath, [BIN, ...args], options, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}
