'use strict'

/**
 * A throwaway redis-server for the run (free port, temporary directory, no persistence), an
 * admin client on it, and the `redis-benchmark` ceiling against it.
 */

const { execFile } = require('node:child_process')
const { promisify } = require('node:util')
const { createClient } = require('redis')
const { RedisServer } = require('../__test__/helpers/redis-server')

const run = promisify(execFile)

/** Starts redis-server on a free port (the test suite's throwaway server). */
async function startRedis() {
  const server = await RedisServer.start()
  return { port: server.port, host: '127.0.0.1', url: server.url, stop: () => server.stop() }
}

/** A node-redis client for inspecting and flushing the server (not a contender). */
async function adminClient(url) {
  const client = createClient({ url })
  client.on('error', () => {})
  await client.connect()
  return client
}

/** Average `MEMORY USAGE` and `STRLEN` over `keys` (string keys only). */
async function memoryOf(admin, keys) {
  let memory = 0
  let length = 0
  let counted = 0
  for (const key of keys) {
    const [usage, strlen] = await Promise.all([admin.memoryUsage(key), admin.strLen(key)])
    if (usage === null || strlen === 0) continue
    memory += usage
    length += strlen
    counted++
  }
  if (counted === 0) throw new Error('no session key found for MEMORY USAGE')
  return { bytes: memory / counted, valueBytes: length / counted, keys: counted }
}

/**
 * `redis-benchmark` SET and GET with a 250-byte value at `-c concurrency -P 1`, sized to last
 * about `seconds` per test from `guessRate` requests/s. Resolves to `{ SET, GET }`.
 */
async function redisBenchmark(server, concurrency, seconds, guessRate) {
  const requests = Math.max(2000, Math.round(guessRate * seconds))
  const args = ['-h', server.host, '-p', String(server.port), '-t', 'set,get', '-d', '250',
    '-c', String(concurrency), '-P', '1', '-n', String(requests), '-r', '1000000', '--csv']
  const { stdout } = await run('redis-benchmark', args, { timeout: 120000 })
  return parseCsv(stdout)
}

function parseCsv(text) {
  const rows = text.trim().split('\n').map((line) => line.split(',').map(unquote))
  const header = rows.shift()
  const column = (name) => {
    const index = header.indexOf(name)
    if (index < 0) throw new Error(`redis-benchmark --csv has no ${name} column`)
    return index
  }
  const out = {}
  for (const row of rows) {
    out[row[0]] = {
      opsPerSec: Number(row[column('rps')]),
      p50: Number(row[column('p50_latency_ms')]),
      p99: Number(row[column('p99_latency_ms')]),
    }
  }
  if (!out.SET || !out.GET) throw new Error(`unexpected redis-benchmark output: ${text}`)
  return out
}

function unquote(cell) {
  return cell.trim().replace(/^"|"$/g, '')
}

async function redisVersion() {
  const { stdout } = await run('redis-server', ['--version'])
  const match = /v=(\S+)/.exec(stdout)
  return match ? match[1] : stdout.trim()
}

module.exports = { startRedis, adminClient, memoryOf, redisBenchmark, redisVersion }
