'use strict'

/**
 * A throwaway `redis-server` for tests: a free port, a temporary directory, no persistence.
 * It can be stopped, killed, restarted on the same port, and paused, to inject faults.
 */

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { createClient } = require('redis')

/** A port nobody listens on right now, in 10000-21999 (see TOOLCHAIN: cluster bus ports). */
async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 10000 + Math.floor(Math.random() * 12000)
    if (await isFree(port)) return port
  }
  throw new Error('no free port found')
}

/** Whether nothing listens on `port` of 127.0.0.1 right now. */
function isFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

class RedisServer {
  constructor(port, dir, extraArgs) {
    this.port = port
    this.dir = dir
    this.extraArgs = extraArgs
    this.url = `redis://127.0.0.1:${port}`
    this.process = null
  }

  /** Starts a server on a free port and waits until it answers. */
  static async start(extraArgs = []) {
    const port = await freePort()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-redis-'))
    const server = new RedisServer(port, dir, extraArgs)
    await server.restart()
    return server
  }

  /** (Re)starts the server process on the same port. */
  async restart() {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no', '--dir', this.dir, ...this.extraArgs]
    this.process = spawn('redis-server', args, { stdio: 'ignore' })
    this.process.once('error', () => {})
    await waitUntil(() => this.#answers(), 5000, `redis-server on ${this.port} did not start`)
  }

  /** Kills the process at once (SIGKILL): clients see a dropped connection. */
  async kill() {
    await this.#stopWith('SIGKILL')
  }

  /** Stops the server and removes its directory. */
  async stop() {
    await this.#stopWith('SIGTERM')
    fs.rmSync(this.dir, { recursive: true, force: true })
  }

  /** A node-redis client on this server, for checking what the store wrote. */
  async client() {
    const client = createClient({ url: this.url, RESP: 2 })
    client.on('error', () => {})
    await client.connect()
    return client
  }

  async #stopWith(signal) {
    const child = this.process
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    await exited
    this.process = null
  }

  #answers() {
    return answersPing(net.connect(this.port, '127.0.0.1'), 'connect')
  }
}

/**
 * Whether `socket` (plain or TLS) gets `+PONG` to a PING sent once `readyEvent` fires; the
 * socket is closed either way.
 */
function answersPing(socket, readyEvent) {
  return new Promise((resolve) => {
    socket.setTimeout(500)
    socket.once(readyEvent, () => socket.write('PING\r\n'))
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

/** Polls `check` until it returns true, or fails after `ms`. */
async function waitUntil(check, ms, message) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(message || `condition not met within ${ms} ms`)
}

module.exports = { RedisServer, answersPing, freePort, isFree, waitUntil }
