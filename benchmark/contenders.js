'use strict'

/**
 * The stores compared. Each `create(url, secret)` resolves to `{ store, close }`, a connected
 * express-session store and the function that closes it with its client. Every store writes
 * under the same prefix length as ours (`session:`), so key sizes in Redis are equal.
 */

const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const PREFIX = 'session:'

/** The version of an installed package (read from disk: ESM-only exports hide it). */
function versionOf(name) {
  const dir = name === null ? ROOT : path.join(ROOT, 'node_modules', name)
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version
}

/** Ours with its defaults, or with `options` on top of them. */
async function createOurs(url, secret, options = {}) {
  const { RedisStore } = require('..')
  const store = new RedisStore({ url, secret, ...options })
  await store.get('warm-up-sid-that-does-not-exist')
  return { store, close: () => store.close() }
}

async function nodeRedisClient(url) {
  const { createClient } = require('redis')
  const client = createClient({ url })
  client.on('error', (err) => console.error('redis client error:', err.message))
  await client.connect()
  return client
}

async function createConnectRedis(url, secret, serializer) {
  const { RedisStore } = await import('connect-redis')
  const client = await nodeRedisClient(url)
  const store = new RedisStore({ client, prefix: PREFIX, serializer })
  return { store, close: () => client.close() }
}

async function createConnectRedis8(url) {
  const { RedisStore } = require('connect-redis-8')
  const Redis = require('ioredis')
  const client = new Redis(url, { lazyConnect: true })
  client.on('error', (err) => console.error('ioredis error:', err.message))
  await client.connect()
  const store = new RedisStore({ client, prefix: PREFIX })
  return { store, close: () => client.quit() }
}

/**
 * JSON then AES-256-GCM with node:crypto: a random 12-byte IV per write, the value stored as
 * base64 of IV | tag | ciphertext (a string, as connect-redis' serializer contract wants).
 */
function aesGcmSerializer(secret) {
  const key = Buffer.from(crypto.hkdfSync('sha256', secret, '', 'connect-redis aes-gcm', 32))
  return {
    stringify(session) {
      const iv = crypto.randomBytes(12)
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv)
      const body = Buffer.concat([cipher.update(JSON.stringify(session), 'utf8'), cipher.final()])
      return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')
    },
    parse(text) {
      const sealed = Buffer.from(text, 'base64')
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12))
      decipher.setAuthTag(sealed.subarray(12, 28))
      const plain = Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()])
      return JSON.parse(plain.toString('utf8'))
    },
  }
}

/**
 * `role`: `ours`, `variant` (ours with a non-default option, to show what it trades), `peer`
 * (plaintext connect-redis: the baseline), `encrypted` (the fair peer).
 */
function contenders() {
  const cr = versionOf('connect-redis')
  const cr8 = versionOf('connect-redis-8')
  const redis = versionOf('redis')
  const ioredis = versionOf('ioredis')
  return [
    { name: 'ours', role: 'ours', label: `sealed-redis-session ${versionOf(null)}`,
      create: (url, secret) => createOurs(url, secret) },
    { name: 'ours-no-poll', role: 'variant',
      label: `sealed-redis-session ${versionOf(null)}, busyPollMicros: 0`,
      create: (url, secret) => createOurs(url, secret, { busyPollMicros: 0 }) },
    { name: 'cr-redis', role: 'peer', label: `connect-redis ${cr} + redis ${redis}`,
      create: (url, secret) => createConnectRedis(url, secret) },
    { name: 'cr8-ioredis', role: 'peer', label: `connect-redis ${cr8} + ioredis ${ioredis}`,
      create: createConnectRedis8 },
    { name: 'cr-redis-aes', role: 'encrypted',
      label: `connect-redis ${cr} + redis ${redis} + AES-256-GCM serializer`,
      create: (url, secret) => createConnectRedis(url, secret, aesGcmSerializer(secret)) },
  ]
}

/** The contenders to run: all, or those named in `only`. */
function selectContenders(only) {
  const all = contenders()
  if (!only) return all
  const chosen = all.filter((c) => only.includes(c.name))
  if (chosen.length === 0) throw new Error(`BENCH_ONLY names none of ${all.map((c) => c.name)}`)
  return chosen
}

module.exports = { PREFIX, contenders, selectContenders }
