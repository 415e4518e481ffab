'use strict'

/**
 * `npm run bench:sizing`: memory per session and set+get throughput of this store on one
 * Redis primary and on a 3-primary cluster (with replicas), for the README's sizing section.
 * Everything runs on this machine, so the cluster shares its cores with the client.
 */

const { once } = require('node:events')
const { RedisStore } = require('..')
const { RedisServer } = require('../__test__/helpers/redis-server')
const { RedisCluster } = require('../__test__/helpers/redis-cluster')
const { jsonBytes, makeSessions, sidGenerator } = require('./session')

const SECONDS = Number(process.env.SIZING_SECONDS || 5)
const CONCURRENCY = 64
const SESSIONS = 10_000

async function main() {
  const rows = []
  const server = await RedisServer.start()
  try {
    rows.push(await measure('1 primary', { url: server.url }, () => server.client()))
  } finally {
    await server.stop()
  }

  const cluster = await RedisCluster.start({ primaries: 3, replicasPerPrimary: 1 })
  try {
    rows.push(await measure('3 primaries + 3 replicas', { cluster: cluster.seeds },
      () => cluster.client()))
  } finally {
    await cluster.stop()
  }

  const [session] = makeSessions(1)
  console.log(`session JSON: ${jsonBytes(session)} bytes; ${SECONDS} s per measure`)
  console.log('| deployment | set+get ops/s (c64) | MEMORY USAGE per session |')
  console.log('| --- | --- | --- |')
  for (const row of rows) console.log(`| ${row.name} | ${row.opsPerSec} | ${row.bytes} B |`)
}

async function measure(name, where, adminClient) {
  const store = new RedisStore({ ...where, secret: 'sizing' })
  await once(store, 'connect')
  const [session] = makeSessions(1)
  const nextSid = sidGenerator()
  const sids = Array.from({ length: SESSIONS }, () => nextSid())
  await Promise.all(sids.map((id) => store.set(id, session)))

  const admin = await adminClient()
  const sample = sids.slice(0, 200)
  const usages = await Promise.all(sample.map((id) => admin.memoryUsage(`session:${id}`)))
  const bytes = Math.round(usages.reduce((sum, n) => sum + n, 0) / sample.length)
  await (admin.close ? admin.close() : admin.quit())

  const opsPerSec = await setGetRate(store, sids, session)
  await store.close()
  return { name, bytes, opsPerSec: Math.round(opsPerSec) }
}

async function setGetRate(store, sids, session) {
  const deadline = Date.now() + SECONDS * 1000
  let done = 0
  const loop = async (n) => {
    for (let i = n; Date.now() < deadline; i += CONCURRENCY) {
      const id = sids[i % sids.length]
      await store.set(id, session)
      await store.get(id)
      done++
    }
  }
  const started = Date.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, n) => loop(n)))
  return done / ((Date.now() - started) / 1000)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
