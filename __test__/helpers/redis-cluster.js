'use strict'

/**
 * A throwaway Redis Cluster for tests: `primaries` slot-owning primaries, each with
 * `replicasPerPrimary` replicas, on free ports of 127.0.0.1 (data ports in 10000-21999, so the
 * bus ports, port + 10000, stay below 32768). Nodes can be killed and replicas promoted.
 */

const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const { createCluster } = require('redis')
const { AdminClients, freePorts, isRunning, parseInfo, pollUntil } = require('./redis-admin')
const { RedisServer } = require('./redis-server')

const START_TIMEOUT = 20000
const FAILOVER_TIMEOUT = 20000
// A manual failover normally completes in ~100 ms; when it silently does nothing (Redis 7.0:
// a node elected less than 4 x cluster-node-timeout ago cannot run a new election yet),
// CLUSTER FAILOVER is sent again after this long.
const MANUAL_FAILOVER_WINDOW = 3000

/** One node of the cluster; `role`, `id` and `slots` are its own view, as last read. */
class ClusterNode {
  constructor(server) {
    this.server = server
    this.port = server.port
    this.url = server.url
    this.id = null
    this.role = 'unknown'
    this.primaryId = null
    this.slots = []
  }

  /** The `redis-server` child process, or null once killed or stopped. */
  get process() {
    return this.server.process
  }

  /** Whether its process is running. */
  get alive() {
    return isRunning(this.server.process)
  }
}

class RedisCluster {
  #admins = new AdminClients()

  constructor(nodes) {
    this.nodes = nodes
    this.seeds = nodes.map((node) => node.url)
  }

  /** Starts the nodes, creates the cluster and waits until it is healthy. */
  static async start({ primaries = 3, replicasPerPrimary = 1, nodeTimeout = 2000 } = {}) {
    const ports = await freePorts(primaries * (1 + replicasPerPrimary), { bus: true })
    const cluster = new RedisCluster(ports.map((port) =>
      new ClusterNode(clusterServer(port, nodeTimeout))))

    try {
      await Promise.all(cluster.nodes.map((node) => node.server.restart()))
      await createWithRedisCli(cluster.nodes, replicasPerPrimary)
      const replicas = primaries * replicasPerPrimary
      await pollUntil(async () => (await cluster.primaries()).length === primaries &&
        cluster.nodes.filter((node) => node.role === 'replica').length === replicas,
      START_TIMEOUT, `cluster: ${primaries} primaries and ${replicas} replicas did not appear`)
      await cluster.waitForOk(START_TIMEOUT)
    } catch (err) {
      await cluster.stop()
      throw err
    }

    return cluster
  }

  /** The node on `port`; throws if there is none. */
  node(port) {
    const node = this.nodes.find((candidate) => candidate.port === Number(port))
    if (!node) throw new Error(`cluster: no node on port ${port}`)
    return node
  }

  /** Live primaries that own slots, each as its own CLUSTER NODES line describes it. */
  async primaries() {
    await this.#refresh()
    return this.nodes.filter((node) => node.alive && node.role === 'primary' &&
      node.slots.length > 0)
  }

  /**
   * Promotes a live replica of the primary on `primaryPort` with CLUSTER FAILOVER (FORCE with
   * `force`, needed once the primary is killed), and waits until it owns the slots, the old
   * primary (if alive) is its replica and the cluster is healthy. Returns the new primary's
   * port. If the cluster already promoted a replica by itself, just waits for health.
   */
  async failover(primaryPort, { force = false, timeout = FAILOVER_TIMEOUT } = {}) {
    const primary = this.node(primaryPort)
    if (!force) await this.waitForOk(timeout)
    const replica = await this.#successorOf(primary)
    if (!replica) throw new Error(`cluster: no live replica of ${primaryPort}`)

    const deadline = Date.now() + timeout
    while (!(await this.#promoted(replica, primary))) {
      if (Date.now() > deadline) throw new Error(`cluster: failover of ${primaryPort} timed out`)
      const args = force ? ['CLUSTER', 'FAILOVER', 'FORCE'] : ['CLUSTER', 'FAILOVER']
      await this.#admins.tryAsk(replica.port, args)
      const window = Math.min(MANUAL_FAILOVER_WINDOW, Math.max(deadline - Date.now(), 1))
      await pollUntil(() => this.#promoted(replica, primary), window).catch(() => {})
    }

    await this.waitForOk(Math.max(deadline - Date.now(), 1000))
    return replica.port
  }

  /** Kills the node on `port` at once (SIGKILL). */
  async kill(port) {
    const node = this.node(port)
    this.#admins.forget(node.port)
    await node.server.kill()
    node.role = 'down'
  }

  /**
   * Waits until every live node reports cluster_state:ok, all agree on roles and on who owns
   * which slots, and every live replica's link to its primary is up.
   */
  async waitForOk(timeout = FAILOVER_TIMEOUT) {
    await pollUntil(() => this.#healthy(), timeout, 'cluster: not healthy in time')
  }

  /** A connected node-redis cluster client (RESP2) seeded with the live nodes. */
  async client(options = {}) {
    const rootNodes = this.nodes.filter((node) => node.alive).map((node) => ({ url: node.url }))
    const client = createCluster({ rootNodes, RESP: 2, ...options })
    client.on('error', () => {})
    await client.connect()
    return client
  }

  /** Stops every node and removes their directories; safe to call twice. */
  async stop() {
    this.#admins.close()
    await Promise.all(this.nodes.map((node) => node.server.stop()))
    for (const node of this.nodes) node.role = 'down'
  }

  /**
   * A live replica of `primary`, or the node that already took over its slots (the cluster
   * promotes a replica by itself once a killed primary is marked as failed).
   */
  async #successorOf(primary) {
    const previousSlots = primary.slots.join(',')
    await this.#refresh()
    return this.nodes.find((node) => node.alive && node !== primary && (
      (node.role === 'replica' && node.primaryId === primary.id) ||
      (node.role === 'primary' && previousSlots !== '' &&
        node.slots.join(',') === previousSlots)))
  }

  /** Whether `replica` owns slots and `primary`, if alive, now follows it. */
  async #promoted(replica, primary) {
    await this.#refresh()
    if (replica.role !== 'primary' || replica.slots.length === 0) return false
    return !primary.alive || (primary.role === 'replica' && primary.primaryId === replica.id)
  }

  /** Reads each live node's own line of CLUSTER NODES into its fields; returns the tables. */
  async #refresh() {
    const live = this.nodes.filter((node) => node.alive)
    const replies = await Promise.all(live.map((node) =>
      this.#admins.tryAsk(node.port, ['CLUSTER', 'NODES'])))
    const tables = new Map()

    live.forEach((node, index) => {
      if (replies[index] === null) return
      const table = parseClusterNodes(replies[index])
      const self = table.find((entry) => entry.flags.includes('myself'))
      node.id = self.id
      node.role = roleOf(self.flags)
      node.primaryId = self.primaryId
      node.slots = self.slots
      tables.set(node.port, table)
    })

    return tables
  }

  /** One health check: see `waitForOk`. */
  async #healthy() {
    const live = this.nodes.filter((node) => node.alive)
    const tables = await this.#refresh()
    if (tables.size !== live.length) return false

    const topologies = new Set([...tables.values()].map(topologyOf))
    if (topologies.size !== 1) return false

    const states = await Promise.all(live.map((node) =>
      this.#admins.tryAsk(node.port, ['CLUSTER', 'INFO'])))
    if (!states.every((state) => state && parseInfo(state).cluster_state === 'ok')) return false

    const replicas = live.filter((node) => node.role === 'replica')
    const links = await Promise.all(replicas.map((node) =>
      this.#admins.tryAsk(node.port, ['INFO', 'replication'])))
    return links.every((info) => info && parseInfo(info).master_link_status === 'up')
  }
}

/** A (not yet started) cluster-enabled server on `port`, in a fresh temporary directory. */
function clusterServer(port, nodeTimeout) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-cluster-'))
  return new RedisServer(port, dir, ['--cluster-enabled', 'yes',
    '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(nodeTimeout),
    // No 5 s wait before a full sync (the default repl-diskless-sync-delay).
    '--repl-diskless-sync-delay', '0'])
}

/** Runs `redis-cli --cluster create` over `nodes`. */
async function createWithRedisCli(nodes, replicasPerPrimary) {
  const args = ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`),
    '--cluster-replicas', String(replicasPerPrimary), '--cluster-yes']
  try {
    await promisify(execFile)('redis-cli', args, { timeout: START_TIMEOUT })
  } catch (err) {
    throw new Error(`redis-cli --cluster create failed: ${err.stdout || ''}${err.stderr || ''}`)
  }
}

/** Parses CLUSTER NODES: id, port, flags, primaryId and slot ranges of each line. */
function parseClusterNodes(text) {
  return String(text).trim().split('\n').map((line) => {
    const [id, address, flags, primaryId, , , , link, ...slots] = line.trim().split(' ')
    return {
      id,
      port: Number(address.split('@')[0].split(':').pop()),
      flags: flags.split(','),
      primaryId: primaryId === '-' ? null : primaryId,
      link,
      slots: slots.filter((slot) => !slot.startsWith('[')),
    }
  })
}

/** 'primary', 'replica' or 'unknown' from CLUSTER NODES flags. */
function roleOf(flags) {
  if (flags.includes('master')) return 'primary'
  if (flags.includes('slave')) return 'replica'
  return 'unknown'
}

/**
 * A canonical string of one node's table: each node's role, primary and slots. Nodes vote
 * only for a replica they see as a replica, so all tables must agree before a failover.
 */
function topologyOf(table) {
  return table
    .map((entry) => [entry.port, roleOf(entry.flags), entry.primaryId, ...entry.slots].join(' '))
    .sort()
    .join('\n')
}

module.exports = { RedisCluster, parseClusterNodes }
