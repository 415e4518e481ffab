'use strict'

// Self-test of the harness for the Cluster, Sentinel and TLS tests: each helper must really
// deliver what it promises, checked with plain node-redis clients, and leave no process.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { createClient } = require('redis')
const { RedisCluster } = require('./helpers/redis-cluster')
const { RedisSentinel } = require('./helpers/redis-sentinel')
const { RedisServer } = require('./helpers/redis-server')
const { RedisTlsServer, aclUser } = require('./helpers/redis-tls')

const KEYS = Array.from({ length: 24 }, (_, index) => `harness:key:${index}`)

/** Whether the process `pid` still exists. */
function exists(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The primary whose slot ranges contain `slot`. */
function ownerOf(primaries, slot) {
  return primaries.find((node) => node.slots.some((range) => {
    const [start, end = start] = range.split('-').map(Number)
    return slot >= start && slot <= end
  }))
}

/** A one-shot node-redis client; `options` are merged in. */
async function connect(options) {
  const client = createClient({ RESP: 2, ...options })
  client.on('error', () => {})
  await client.connect()
  return client
}

/** Asserts that connecting with `options` and sending PING fails. */
async function assertRefused(options) {
  const client = createClient({ RESP: 2, ...options })
  client.on('error', () => {})
  await assert.rejects(async () => {
    await client.connect()
    await client.ping()
  })
  client.destroy()
}

describe('RedisCluster', () => {
  let cluster

  before(async () => {
    cluster = await RedisCluster.start()
  })

  after(async () => {
    await cluster?.stop()
  })

  it('comes up with 3 slot-owning primaries, each with a replica', async () => {
    const primaries = await cluster.primaries()
    assert.equal(primaries.length, 3)
    assert.equal(cluster.seeds.length, 6)
    assert.equal(cluster.nodes.filter((node) => node.role === 'replica').length, 3)
    for (const primary of primaries) {
      assert.ok(cluster.nodes.some((node) => node.primaryId === primary.id))
    }
  })

  it('serves keys of different slots through createCluster', async () => {
    const client = await cluster.client()
    const primaries = await cluster.primaries()

    const owners = new Set()
    for (const key of KEYS) {
      await client.set(key, `value of ${key}`)
      owners.add(ownerOf(primaries, await client.clusterKeySlot(key)).port)
    }
    assert.equal(owners.size, 3)

    for (const key of KEYS) assert.equal(await client.get(key), `value of ${key}`)
    client.destroy()
  })

  it('failover() promotes a replica and the data stays readable', async (t) => {
    const [old] = await cluster.primaries()
    const started = Date.now()
    const promoted = await cluster.failover(old.port)
    const took = Date.now() - started

    const primaries = await cluster.primaries()
    assert.equal(primaries.length, 3)
    assert.ok(primaries.some((node) => node.port === promoted))
    assert.ok(!primaries.some((node) => node.port === old.port))
    assert.equal(cluster.node(old.port).role, 'replica')

    const client = await cluster.client()
    for (const key of KEYS) assert.equal(await client.get(key), `value of ${key}`)
    client.destroy()
    t.diagnostic(`cluster failover took ${took} ms`)
  })

  it('stop() leaves no process behind', async () => {
    const pids = cluster.nodes.map((node) => node.process.pid)
    await cluster.stop()
    assert.deepEqual(pids.filter(exists), [])
  })
})

describe('RedisSentinel', () => {
  let sentinel

  before(async () => {
    sentinel = await RedisSentinel.start()
  })

  after(async () => {
    await sentinel?.stop()
  })

  it('reports the primary', async () => {
    assert.equal(sentinel.masterName, 'mymaster')
    assert.equal(sentinel.sentinels.length, 3)
    assert.equal(await sentinel.primaryPort(), sentinel.servers[0].port)
  })

  it('failover() moves the primary and the new one takes writes', async (t) => {
    const before = await sentinel.primaryPort()
    const started = Date.now()
    const after = await sentinel.failover({ demote: true })
    const took = Date.now() - started

    assert.notEqual(after, before)
    assert.equal(await sentinel.primaryPort(), after)
    const client = await connect({ url: `redis://127.0.0.1:${after}` })
    assert.equal(await client.set('harness:sentinel', 'written'), 'OK')
    client.destroy()
    t.diagnostic(`sentinel failover took ${took} ms`)
  })

  it('client() writes through the sentinels', async () => {
    const client = await sentinel.client()
    assert.equal(await client.get('harness:sentinel'), 'written')
    assert.equal(await client.set('harness:sentinel', 'again'), 'OK')
    await client.close()
  })

  it('waitForReplica() sees the demoted primary, and failover() moves back', async () => {
    const first = sentinel.servers[0].port
    await sentinel.waitForReplica()
    assert.equal(await sentinel.failover(), first)

    const client = await connect({ url: `redis://127.0.0.1:${first}` })
    assert.equal(await client.get('harness:sentinel'), 'again')
    client.destroy()
  })

  it('stop() leaves no process behind', async () => {
    const pids = [...sentinel.servers.map((server) => server.process.pid),
      ...sentinel.sentinelProcesses.map((child) => child.pid)]
    await sentinel.stop()
    assert.deepEqual(pids.filter(exists), [])
  })
})

describe('RedisTlsServer and aclUser', () => {
  const servers = []

  after(async () => {
    await Promise.all(servers.map((server) => server.stop()))
  })

  it('accepts a client with the CA when client certificates are optional', async () => {
    const server = await RedisTlsServer.start()
    servers.push(server)
    assert.match(server.url, /^rediss:\/\/127\.0\.0\.1:\d+$/)

    const client = await server.client({ clientCert: false })
    assert.equal(await client.ping(), 'PONG')
    client.destroy()

    await assertRefused({ url: `redis://127.0.0.1:${server.port}`,
      socket: { reconnectStrategy: false, connectTimeout: 2000 } })
  })

  it('requires the client certificate when asked to', async () => {
    const server = await RedisTlsServer.start({ requireClientCert: true })
    servers.push(server)

    const client = await server.client()
    assert.equal(await client.ping(), 'PONG')
    client.destroy()

    await assertRefused(server.clientOptions({ clientCert: false }))
    await assertRefused({ url: `redis://127.0.0.1:${server.port}`,
      socket: { reconnectStrategy: false, connectTimeout: 2000 } })
  })

  it('aclUser() creates a user who can authenticate by URL', async () => {
    const server = await RedisServer.start()
    servers.push(server)

    const url = await aclUser(server.url, 'harness-user', 'harness-password')
    assert.equal(url, `redis://harness-user:harness-password@127.0.0.1:${server.port}`)
    const client = await connect({ url })
    assert.equal(await client.sendCommand(['ACL', 'WHOAMI']), 'harness-user')
    client.destroy()

    await assertRefused({ url: `redis://harness-user:wrong@127.0.0.1:${server.port}`,
      socket: { reconnectStrategy: false } })
  })
})
