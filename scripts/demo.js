'use strict'

/**
 * `npm run demo`: the NestJS example (examples/nestjs) with its page and socket.io gateway.
 * Builds the example when dist/ is missing or older than src/; uses the Redis at REDIS_URL
 * when one answers there, else a private redis-server on a free port, stopped with the demo.
 * Environment: REDIS_URL, PORT (default 3000, or a free port when 3000 is taken).
 */

const { spawn, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const { once } = require('node:events')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const tls = require('node:tls')

const ROOT = path.join(__dirname, '..')
const EXAMPLE = path.join(ROOT, 'examples', 'nestjs')
const MAIN = path.join(EXAMPLE, 'dist', 'main.js')
const PING_MS = 500
const REDIS_START_MS = 5000
const APP_START_MS = 20_000
const STOP_MS = 5000

/**
 * The processes this script started, each in its own process group (`detached`): Ctrl-C
 * reaches this script only, which stops the app (it closes its store), then Redis.
 */
const children = []
let redisDir = null
let stopping = false

async function main() {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => shutdown(signal))
  process.on('exit', killLeftovers)

  buildIfNeeded()
  const redis = await pickRedis()
  const port = await pickPort()
  const app = startApp(redis.url, port)
  const base = `http://127.0.0.1:${port}`
  await waitForApp(base, app)
  printWelcome(base, redis)
  const [code] = await once(app, 'exit')
  if (!stopping) await finish(code === 0 ? 0 : 1)
}

// ---- build

function buildIfNeeded() {
  if (isBuilt()) return
  console.log('Building the example: npm run build:example')
  const result = spawnSync('npm', ['run', '--silent', 'build:example'], {
    cwd: ROOT,
    stdio: 'inherit',
  })
  if (result.status !== 0) die('the build failed (did `npm install` run?)')
}

/** dist/main.js exists and is newer than every file of src/. */
function isBuilt() {
  if (!fs.existsSync(MAIN)) return false
  const builtAt = fs.statSync(MAIN).mtimeMs
  const src = path.join(EXAMPLE, 'src')
  return fs.readdirSync(src).every((name) => fs.statSync(path.join(src, name)).mtimeMs <= builtAt)
}

// ---- Redis

/** `{ url, own }`: REDIS_URL if something answers there, else a redis-server of our own. */
async function pickRedis() {
  const url = process.env.REDIS_URL
  if (url && await answers(url)) {
    console.log(`Using the Redis at ${redact(url)}`)
    return { url, own: false }
  }
  if (url) console.log(`Nothing answers at ${redact(url)}: starting a redis-server`)
  return { url: await startRedis(), own: true }
}

/** Whether a Redis answers a PING at `url` within PING_MS (an error reply counts). */
function answers(url) {
  let target
  try {
    target = new URL(url)
  } catch {
    return Promise.resolve(false)
  }
  const secure = target.protocol === 'rediss:'
  const host = target.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'
  const options = { host, port: Number(target.port) || 6379 }
  return new Promise((resolve) => {
    const socket = secure
      ? tls.connect({ ...options, servername: net.isIP(host) ? undefined : host })
      : net.connect(options)
    const done = (ok) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), PING_MS)
    socket.once(secure ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(/^[+-]/.test(data.toString('latin1'))))
    socket.once('error', () => done(false))
  })
}

async function startRedis() {
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-demo-redis-'))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', redisDir]
  const child = spawn('redis-server', args, { stdio: 'ignore', detached: true })
  children.push(child)
  const failed = once(child, 'error').then(([err]) => err)
  const deadline = Date.now() + REDIS_START_MS
  while (Date.now() < deadline) {
    const err = await Promise.race([failed, sleep(50).then(() => null)])
    if (err) die(noRedisServer(err))
    if (child.exitCode !== null) die(`redis-server exited (code ${child.exitCode})`)
    if (await answers(url)) {
      console.log(`Started a redis-server on port ${port} (it stops with the demo)`)
      return url
    }
  }
  return die(`redis-server did not answer within ${REDIS_START_MS} ms`)
}

function noRedisServer(err) {
  if (err.code !== 'ENOENT') return `cannot start redis-server: ${err.message}`
  return 'redis-server is not on PATH: install Redis (apt-get install redis-server, ' +
    'brew install redis) or set REDIS_URL to a running one'
}

// ---- the app

/** PORT if set (0: any free port); else 3000, or a free port when 3000 is taken. */
async function pickPort() {
  const { PORT } = process.env
  if (PORT && PORT !== '0') return Number(PORT)
  if (PORT !== '0' && await canListen(3000)) return 3000
  const port = await freePort()
  if (PORT !== '0') console.log(`Port 3000 is taken: using ${port}`)
  return port
}

function startApp(redisUrl, port) {
  const env = {
    ...process.env,
    NODE_ENV: 'development', // plain-HTTP cookies: not `secure`
    REDIS_URL: redisUrl,
    PORT: String(port),
    // A fresh secret each run: sessions last as long as the demo.
    SESSION_SECRET: process.env.SESSION_SECRET || crypto.randomBytes(32).toString('base64url'),
  }
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env,
    stdio: 'inherit',
    detached: true,
  })
  children.push(child)
  return child
}

/** Polls `base` until the page answers; dies if the app exits or takes too long. */
async function waitForApp(base, app) {
  const deadline = Date.now() + APP_START_MS
  while (Date.now() < deadline) {
    if (app.exitCode !== null || app.signalCode !== null) await finish(1, 'the app stopped')
    try {
      const res = await fetch(base + '/', { signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      if (res.ok) return
    } catch {
      // not listening yet
    }
    await sleep(200)
  }
  await finish(1, `the app did not answer within ${APP_START_MS} ms`)
}

function printWelcome(base, redis) {
  const lines = [
    '',
    `  Open ${base}/ and try:`,
    '    1. Log in with any user id: the page shows the user, the socket "connected as ...".',
    '    2. Open the same address in a second tab: same cookie, same user, its own socket.',
    '    3. Log out in one tab: the session is destroyed in Redis and the socket of the',
    '       other tab drops ("refused: unauthorized").',
    '    4. Press Reconnect: the handshake is refused, the session is gone.',
  ]
  if (redis.own) {
    lines.push(`  Look inside Redis: redis-cli -u ${redis.url} --scan lists the sessions;`,
      '  GET one: it is sealed (AES-256-GCM), not JSON. Hashes are tombstones of logouts.')
  }
  lines.push('  Ctrl-C stops the demo.', '')
  console.log(lines.join('\n'))
}

// ---- stopping

function shutdown(signal) {
  if (stopping) return
  console.log(`\n${signal}: stopping the demo`)
  finish(signal === 'SIGINT' ? 130 : 143)
}

/** Stops the app (it closes its store), then our redis-server; exits with `code`. */
async function finish(code, message) {
  stopping = true
  if (message) console.error(`demo: ${message}`)
  for (const child of [...children].reverse()) await stop(child)
  if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true })
  process.exit(code)
}

/** SIGTERM, then SIGKILL after STOP_MS; resolves once the process has exited. */
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_MS)
  await exited
  clearTimeout(timer)
}

/** Last resort when the process exits some other way: no redis-server left behind. */
function killLeftovers() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid) child.kill('SIGKILL')
  }
}

// ---- small helpers

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function canListen(port) {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** The URL without its password. */
function redact(url) {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(an unparsable REDIS_URL)'
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function die(message) {
  console.error(`demo: ${message}`)
  killLeftovers()
  if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true })
  process.exit(1)
}

main().catch((err) => finish(1, err.stack || String(err)))
