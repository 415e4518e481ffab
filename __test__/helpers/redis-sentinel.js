'use strict'

/**
 * A throwaway Sentinel deployment for tests: a primary, one replica (`--replicaof`) and
 * `sentinels` sentinels monitoring them as `masterName`, all on free ports of 127.0.0.1.
 */

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')
const { createSentinel } = require('redis')
const {
  AdminClients, freePorts, isRunning, parseInfo, pollUntil, spawnRedis, stopChild,
} = require('./redis-admin')
const { RedisServer } = require('./redis-server')

const START_TIMEOUT = 20000
const FAILOVER_TIMEOUT = 30000
const PROBE_KEY = 'srs-harness:write-probe'

// No 5 s wait before a full sync (the default repl-diskless-sync-delay), on both servers as
// either can become the primary.
const FAST_SYNC = ['--repl-diskless-sync-delay', '0']

class RedisSentinel {
  #admins = new AdminClients()

  constructor(masterName) {
    this.masterName = masterName
    this.servers = []
    this.sentinelPorts = []
    this.sentinels = []
    this.sentinelProcesses = []
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-sentinel-'))
  }

  /** Starts a primary, its replica and the sentinels, and waits until they know each other. */
  static async start({ masterName = 'mymaster', sentinels = 3 } = {}) {
    const deployment = new RedisSentinel(masterName)

    try {
      const primary = await RedisServer.start(FAST_SYNC)
      deployment.servers.push(primary)
      const replica = await RedisServer.start([...FAST_SYNC, '--replicaof', '127.0.0.1',
        String(primary.port)])
      deployment.servers.push(replica)
      await pollUntil(() => deployment.#linked(replica.port), START_TIMEOUT,
        'sentinel: the replica did not sync with the primary in time')

      deployment.sentinelPorts = await freePorts(sentinels)
      deployment.sentinels = deployment.sentinelPorts.map((port) => `redis://127.0.0.1:${port}`)
      for (const port of deployment.sentinelPorts) deployment.#spawnSentinel(port, primary.port)
      await pollUntil(() => deployment.#ready(), START_TIMEOUT,
        'sentinel: sentinels did not see the replica and each other in time')
    } catch (err) {
      await deployment.stop()
      throw err
    }

    return deployment
  }

  /** The port of the primary, as the first answering sentinel reports it. */
  async primaryPort() {
    for (const port of this.sentinelPorts) {
      const address = await this.#masterAddress(port)
      if (address) return address
    }
    throw new Error('sentinel: no sentinel reported a primary')
  }

  /**
   * SENTINEL FAILOVER, then waits until every sentinel reports a new primary and that primary
   * accepts writes. Returns the new primary's port.
   *
   * The sentinels demote a still running old primary only 8-20 s later; until then it is a
   * writable primary too. `demote: true` sends it REPLICAOF the new primary at once (what the
   * sentinels will do anyway); `waitForReplica()` then waits for the link.
   */
  async failover({ demote = false, timeout = FAILOVER_TIMEOUT } = {}) {
    const before = await this.primaryPort()
    const deadline = Date.now() + timeout
    await this.#requestFailover(deadline)

    let after = null
    await pollUntil(async () => {
      const ports = await Promise.all(this.sentinelPorts.map((port) =>
        this.#masterAddress(port)))
      if (ports[0] === before || ports.some((port) => port !== ports[0])) return false
      after = ports[0]
      return this.#acceptsWrites(after)
    }, Math.max(deadline - Date.now(), 1), `sentinel: failover from ${before} did not complete`)

    if (demote) await this.#admins.tryAsk(before, ['REPLICAOF', '127.0.0.1', after])
    return after
  }

  /** Waits until the primary has `count` online replicas (e.g. the old primary, demoted). */
  async waitForReplica({ count = 1, timeout = FAILOVER_TIMEOUT } = {}) {
    await pollUntil(async () => {
      const info = await this.#admins.tryAsk(await this.primaryPort(), ['INFO', 'replication'])
      const replicas = Object.entries(parseInfo(info || ''))
        .filter(([key, value]) => /^slave\d+$/.test(key) && value.includes('state=online'))
      return replicas.length >= count
    }, timeout, `sentinel: primary did not get ${count} online replica(s) in time`)
  }

  /** A connected node-redis sentinel client (RESP2) for `masterName`. */
  async client(options = {}) {
    const sentinelRootNodes = this.sentinelPorts.map((port) => ({ host: '127.0.0.1', port }))
    const client = createSentinel({ name: this.masterName, sentinelRootNodes, RESP: 2,
      ...options })
    client.on('error', () => {})
    await client.connect()
    return client
  }

  /** Stops the sentinels, then the servers, and removes the directories; safe to call twice. */
  async stop() {
    this.#admins.close()
    await Promise.all(this.sentinelProcesses.map((child) => stopChild(child)))
    await Promise.all(this.servers.map((server) => server.stop()))
    fs.rmSync(this.dir, { recursive: true, force: true })
  }

  /** Writes a config file for a sentinel on `port` and spawns it. */
  #spawnSentinel(port, primaryPort) {
    const dir = path.join(this.dir, String(port))
    fs.mkdirSync(dir)
    const quorum = Math.floor(this.sentinelPorts.length / 2) + 1
    const name = this.masterName
    const config = path.join(dir, 'sentinel.conf')
    fs.writeFileSync(config, [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${primaryPort} ${quorum}`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      '',
    ].join('\n'))
    this.sentinelProcesses.push(spawnRedis([config, '--sentinel']))
  }

  /** Whether the replica on `port` reports its link to the primary up. */
  async #linked(port) {
    const info = await this.#admins.tryAsk(port, ['INFO', 'replication'])
    return Boolean(info) && parseInfo(info).master_link_status === 'up'
  }

  /** Whether every sentinel sees a healthy replica and all the other sentinels. */
  async #ready() {
    if (!this.sentinelProcesses.every(isRunning)) throw new Error('sentinel: a sentinel exited')
    const checks = await Promise.all(this.sentinelPorts.map(async (port) => {
      const replicas = await this.#sentinelList(port, 'REPLICAS')
      const peers = await this.#sentinelList(port, 'SENTINELS')
      const healthy = replicas?.filter((replica) => replica.flags === 'slave' &&
        replica['master-link-status'] === 'ok')
      return healthy?.length >= 1 && peers?.length === this.sentinelPorts.length - 1
    }))
    return checks.every(Boolean)
  }

  /** SENTINEL REPLICAS|SENTINELS of the sentinel on `port`, as objects; null on error. */
  async #sentinelList(port, what) {
    const reply = await this.#admins.tryAsk(port, ['SENTINEL', what, this.masterName])
    return reply && reply.map(pairsToObject)
  }

  /** The primary's port according to the sentinel on `port`; null on error. */
  async #masterAddress(port) {
    const reply = await this.#admins.tryAsk(port,
      ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.masterName])
    return reply ? Number(reply[1]) : null
  }

  /** Sends SENTINEL FAILOVER, retrying while no replica qualifies yet (e.g. right after one). */
  async #requestFailover(deadline) {
    for (;;) {
      try {
        await this.#admins.ask(this.sentinelPorts[0], ['SENTINEL', 'FAILOVER', this.masterName])
        return
      } catch (err) {
        if (!/NOGOODSLAVE|INPROG/.test(err.message) || Date.now() > deadline) throw err
        await sleep(200)
      }
    }
  }

  /** Whether the server on `port` accepts a write (DEL of an absent key: no data change). */
  async #acceptsWrites(port) {
    return (await this.#admins.tryAsk(port, ['DEL', PROBE_KEY])) !== null
  }
}

/** [k1, v1, k2, v2, ...] → { k1: v1, k2: v2, ... } */
function pairsToObject(pairs) {
  const object = {}
  for (let index = 0; index < pairs.length; index += 2) object[pairs[index]] = pairs[index + 1]
  return object
}

module.exports = { RedisSentinel }
