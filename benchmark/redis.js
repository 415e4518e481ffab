'use strict'

/**
 * A throwaway redis-server for the run (free port, temporary directory, no persistence), an
 * admin client on it, and the `redis-benchmark` ceiling against it.
 */

const { spawn, execFile } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const { createClient } = require('redis')

const run = promisify(execFile)

async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 10000 + Math.floor(Math.random() * 12000)
    if (port === 6379) continue
    if (await isFree(port)) return port
  }
  throw new Error('no free port found')
}

function isFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Starts redis-server on a free port; resolves once it answers PING. */
async function startRedis() {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-bench-'))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir]
  const child = spawn('redis-server', args, { stdio: 'ignore' })
  const failed = new Promise((resolve, reject) => child.once('error', reject))
  const server = { port, host: '127.0.0.1', url: `redis://127.0.0.1:${port}`, child, dir }
  server.stop = () => stopRedis(server)
  try {
    await Promise.race([waitForPing(port, 5000), failed])
  } catch (err) {
    await server.stop()
    throw err
  }
  return server
}

async function stopRedis(server) {
  const { child } = server
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }
  fs.rmSync(server.dir, { recursive: true, force: true })
}

async function waitForPing(port, ms) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await pings(port)) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`redis-server on ${port} did not start`)
}

function pings(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setTimeout(500)
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => {
      socket.destroy()
      resolve(data.toString().startsWith('+PONG'))
    })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
  })
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
