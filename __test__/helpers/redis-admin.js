'use strict'

/**
 * Plumbing shared by the cluster, sentinel and TLS helpers: one admin connection per port
 * (for polling roles and states without opening a socket per poll), spawning and stopping
 * `redis-server` processes, and picking several distinct free ports.
 */

const { spawn } = require('node:child_process')
const { setTimeout: sleep } = require('node:timers/promises')
const { createClient } = require('redis')
const { freePort, isFree, waitUntil } = require('./redis-server')

/** Admin connections to 127.0.0.1 ports, opened on first use and dropped when they fail. */
class AdminClients {
  #clients = new Map()

  /** The reply of `args` sent to `port`, or throws (a broken connection is dropped). */
  async ask(port, args) {
    const client = await this.#connected(port)
    try {
      return await client.sendCommand(args.map(String))
    } catch (err) {
      if (!client.isReady) this.forget(port)
      throw err
    }
  }

  /** Like `ask`, but `null` instead of an error: for polling. */
  async tryAsk(port, args) {
    try {
      return await this.ask(port, args)
    } catch {
      return null
    }
  }

  /** Closes the connection to `port`, if any (e.g. before killing its server). */
  forget(port) {
    const pending = this.#clients.get(port)
    this.#clients.delete(port)
    pending?.then((client) => client.destroy(), () => {})
  }

  /** Closes every connection. */
  close() {
    for (const port of [...this.#clients.keys()]) this.forget(port)
  }

  /** The cached connection to `port`, opening it first if needed. */
  #connected(port) {
    if (!this.#clients.has(port)) {
      const client = createClient({
        RESP: 2,
        disableClientInfo: true,
        socket: { host: '127.0.0.1', port, connectTimeout: 1000, reconnectStrategy: false },
      })
      client.on('error', () => {})
      const pending = client.connect()
      pending.catch(() => {
        if (this.#clients.get(port) === pending) this.#clients.delete(port)
      })
      this.#clients.set(port, pending)
    }
    return this.#clients.get(port)
  }
}

/** Like `waitUntil`, but checks at most every `interval` ms: for checks costing commands. */
async function pollUntil(check, ms, message, interval = 100) {
  await waitUntil(async () => (await check()) || (await sleep(interval), false), ms, message)
}

/** Spawns `redis-server` with `args`; output is discarded. */
function spawnRedis(args) {
  const child = spawn('redis-server', args, { stdio: 'ignore' })
  child.once('error', () => {})
  return child
}

/** Sends `signal` to `child` and waits until it exited; no-op if it already did. */
async function stopChild(child, signal = 'SIGTERM') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  await exited
}

/** Whether `child` is still running. */
function isRunning(child) {
  return Boolean(child) && child.exitCode === null && child.signalCode === null
}

/** `count` distinct free ports; with `bus`, port + 10000 (the cluster bus) is free as well. */
async function freePorts(count, { bus = false } = {}) {
  const ports = new Set()
  for (let attempt = 0; ports.size < count; attempt++) {
    if (attempt > 200) throw new Error(`no ${count} free ports found`)
    const port = await freePort()
    if (bus && !(await isFree(port + 10000))) continue
    ports.add(port)
  }
  return [...ports]
}

/** Parses `key:value` lines (INFO, CLUSTER INFO) into an object. */
function parseInfo(text) {
  const info = {}
  for (const line of String(text).split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) info[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return info
}

module.exports = {
  AdminClients, freePorts, isRunning, parseInfo, pollUntil, spawnRedis, stopChild,
}
