'use strict'

/**
 * End to end: one app child process per contender (see app.js), a login to get a valid
 * session cookie, then autocannon on `GET /me` with that cookie.
 */

const { fork } = require('node:child_process')
const http = require('node:http')
const path = require('node:path')
const autocannon = require('autocannon')

const APP = path.join(__dirname, 'app.js')

/** Forks the app of `contender`; resolves to a handle once it listens and a login works. */
async function startApp(contender, url, secret) {
  const child = fork(APP, [contender.name, url, secret], { stdio: ['ignore', 'inherit',
    'inherit', 'ipc'] })
  const app = { child, port: 0, cookie: '', requests: 0, pending: new Map() }
  child.on('message', (message) => {
    if (message.type !== 'cpu' || !app.pending.has(message.id)) return
    app.pending.get(message.id).resolve(message)
    app.pending.delete(message.id)
  })
  child.once('exit', (code) => {
    for (const { reject } of app.pending.values()) reject(new Error(`app exited (${code})`))
    app.pending.clear()
  })
  app.port = await new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`app ${contender.name} exited (${code})`)))
    child.on('message', (message) => message.type === 'ready' && resolve(message.port))
  })
  await relogin(app)
  return app
}

/** Logs in again (a new session, so that a flushed Redis does not matter) and checks it. */
async function relogin(app) {
  app.cookie = await login(app.port)
  const res = await request(app.port, 'GET', '/me', { cookie: app.cookie })
  if (res.statusCode !== 200) throw new Error(`GET /me with the login cookie: ${res.statusCode}`)
}

function request(port, method, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res))
      })
    req.on('error', reject)
    req.end()
  })
}

async function login(port) {
  const res = await request(port, 'POST', '/login')
  const cookie = (res.headers['set-cookie'] || []).find((c) => c.startsWith('connect.sid='))
  if (res.statusCode !== 204 || !cookie) throw new Error(`login failed (${res.statusCode})`)
  return cookie.split(';')[0]
}

let cpuRequests = 0
function appCpu(app) {
  const id = ++cpuRequests
  return new Promise((resolve, reject) => {
    if (!app.child.connected) return reject(new Error('app is gone'))
    app.pending.set(id, { resolve, reject })
    app.child.send({ type: 'cpu', id })
  })
}

/** Drives `GET /me` for `seconds`; resolves to req/s, latency and the app's CPU per request. */
async function drive(app, seconds, connections) {
  const before = await appCpu(app)
  const result = await autocannon({
    url: `http://127.0.0.1:${app.port}/me`,
    connections,
    duration: seconds,
    headers: { cookie: app.cookie },
  })
  const after = await appCpu(app)
  const ok = result['2xx']
  if (ok === 0) throw new Error('autocannon: no 2xx response')
  return {
    reqPerSec: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuProcess: (after.process - before.process) / ok,
    cpuMain: (after.main - before.main) / ok,
    failures: result.non2xx + result.errors + result.timeouts,
  }
}

/** Asks the app to close its store and exit; kills it if it has not within 5 s. */
async function stopApp(app) {
  const { child } = app
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  if (child.connected) child.send({ type: 'close' })
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

module.exports = { startApp, relogin, drive, stopApp }
