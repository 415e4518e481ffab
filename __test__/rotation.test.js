'use strict'

// Key rotation: `npx sealed-redis-session rotate` re-seals every session with the new key,
// keeps TTLs and tombstones, skips what is current, never replaces a newer session with an
// older one, resumes after a stop, and works on a Redis Cluster.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile, spawn } = require('node:child_process')
const crypto = require('node:crypto')
const { once } = require('node:events')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { RESP_TYPES } = require('redis')
const { RedisStore } = require('..')
const { RedisServer, waitUntil } = require('./helpers/redis-server')
const { RedisCluster } = require('./helpers/redis-cluster')

const BIN = path.join(__dirname, '..', 'bin', 'sealed-redis-session.js')
const STATE_FILE = '.sealed-redis-session-rotate.json'
const OLD = crypto.randomBytes(32).toString('base64')
const NEW = crypto.randomBytes(32).toString('base64')
const HOUR = 3_600_000

const session = (extra) => ({ cookie: { originalMaxAge: null }, ...extra })

describe('rotate on one Redis server', () => {
  let server
  let raw
  const stores = []

  /** A connected store on the test server; closed after the tests. */
  const storeWith = async (prefix, keys, extra = {}) => {
    const store = new RedisStore({ url: server.url, secret: 's', prefix, encryptionKeys: keys,
      ...extra })
    stores.push(store)
    await once(store, 'connect')
    return store
  }

  const rotateArgs = (prefix, ...extra) =>
    ['rotate', '--url', server.url, '--prefix', prefix, '--key', NEW, '--key', OLD, ...extra]

  before(async () => {
    server = await RedisServer.start()
    raw = (await server.client()).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
  })

  after(async () => {
    await Promise.all(stores.map((store) => store.close()))
    await raw?.close()
    await server?.stop()
  })

  it('re-seals old sessions for the new key alone, keeping TTLs and tombstones', async () => {
    const old = await storeWith('r1:', [OLD])
    const forever = await storeWith('r1:', [OLD], { disableTTL: true })
    const expires = new Date(Date.now() + HOUR)
    const sids = Array.from({ length: 120 }, (_, i) => `sid-${i}`)
    await Promise.all(sids.map((sid, i) => old.set(sid, i % 2
      ? session({ n: i })
      : { cookie: { originalMaxAge: HOUR, expires }, n: i })))
    await forever.set('no-expiry', session({ n: -1 }))
    await Promise.all(['sid-0', 'sid-1', 'sid-2'].map((sid) => old.destroy(sid)))
    const live = sids.slice(3)
    const before = await pttls(raw, 'r1:', [...live, 'no-expiry'])

    const run = await cli(rotateArgs('r1:', '--scan-count', '25'))

    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^rotated: +118 \(now sealed with key [0-9a-f]{8}\)$/m)
    assert.match(run.stdout, /^already current: +0$/m)
    assert.match(run.stdout, /^undecryptable: +0$/m)
    assert.match(run.stderr, /\[#{20}\] 100% 118\/118 rotated 118 skipped 0 changed 0/)
    assert.equal(fs.existsSync(path.join(run.cwd, STATE_FILE)), false, 'state file left')

    const newOnly = await storeWith('r1:', [NEW])
    const loaded = await Promise.all(live.map((sid) => newOnly.get(sid)))
    assert.deepEqual(loaded.map((s) => s?.n), live.map((sid) => Number(sid.slice(4))))
    assert.equal((await newOnly.get('no-expiry')).n, -1)
    assert.equal(await old.get('sid-3'), null, 'still readable with the old key alone')

    const keyId = /sealed with key ([0-9a-f]{8})/.exec(run.stdout)[1]
    for (const sid of live) {
      assert.equal((await raw.get(`r1:${sid}`)).subarray(1, 5).toString('hex'), keyId)
    }

    const after = await pttls(raw, 'r1:', [...live, 'no-expiry'])
    after.forEach((ttl, i) => {
      if (before[i] === -1) return assert.equal(ttl, -1, 'an expiry was added')
      assert.ok(ttl <= before[i] && ttl > before[i] - 10_000, `PTTL ${before[i]} -> ${ttl}`)
    })
    for (const sid of ['sid-0', 'sid-1', 'sid-2']) {
      assert.equal(await raw.type(`r1:${sid}`), 'hash', 'a tombstone was touched')
      assert.ok((await raw.pTTL(`r1:${sid}`)) > 0)
      assert.equal(await newOnly.get(sid), null)
    }
  })

  it('leaves values already on the new key untouched, and a second run rotates none', async () => {
    const old = await storeWith('r2:', [OLD])
    const current = await storeWith('r2:', [NEW, OLD])
    await Promise.all(range(10).map((i) => old.set(`old-${i}`, session({ i }))))
    await Promise.all(range(15).map((i) => current.set(`new-${i}`, session({ i }))))
    const newKeys = range(15).map((i) => `r2:new-${i}`)
    const bytesBefore = await Promise.all(newKeys.map((key) => raw.get(key)))

    const first = await cli(rotateArgs('r2:'))
    const second = await cli(rotateArgs('r2:'))

    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /^rotated: +10 /m)
    assert.match(first.stdout, /^already current: +15$/m)
    const bytesAfter = await Promise.all(newKeys.map((key) => raw.get(key)))
    assert.deepEqual(bytesAfter, bytesBefore, 'a value already on the new key was rewritten')
    assert.equal(second.code, 0, second.stderr)
    assert.match(second.stdout, /^rotated: +0 /m)
    assert.match(second.stdout, /^already current: +25$/m)
  })

  it('counts values that no key opens, leaves them alone and exits with 1', async () => {
    const old = await storeWith('r3:', [OLD])
    const foreign = await storeWith('r3:', [crypto.randomBytes(32)])
    await old.set('mine', session({ mine: true }))
    await foreign.set('theirs', session({}))
    await raw.set('r3:garbage', 'not an envelope')
    const theirs = await raw.get('r3:theirs')

    const run = await cli(rotateArgs('r3:'))

    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stdout, /^rotated: +1 /m)
    assert.match(run.stdout, /^undecryptable: +2$/m)
    assert.match(run.stderr, /2 stored value\(s\) open with none of the keys/)
    assert.deepEqual(await raw.get('r3:theirs'), theirs)
    assert.equal((await raw.get('r3:garbage')).toString(), 'not an envelope')
  })

  it('never replaces a session saved by live traffic during the rotation', async () => {
    const old = await storeWith('r4:', [OLD])
    const app = await storeWith('r4:', [NEW, OLD])
    const rotator = await storeWith('r4:', [NEW, OLD], { scanCount: 100 })
    const sids = range(2000).map((i) => `live-${i}`)
    await Promise.all(sids.map((sid) => old.set(sid, session({ version: 1 }))))
    const scanner = await server.client()

    // Page by page, the application saves version 2 of the sessions that the rotation is
    // reading and writing back: some before the read, some between the read and the write,
    // some after. A rotation that wrote back what it had read would bring sessions of the
    // middle group back to version 1.
    const totals = { scanned: 0, rotated: 0, alreadyCurrent: 0, changedMeanwhile: 0,
      undecryptable: 0 }
    let cursor = '0'
    do {
      const [, keys] = await scanner.sendCommand(['SCAN', cursor, 'MATCH', 'r4:*', 'COUNT',
        '100', 'TYPE', 'string'])
      const sidsOfPage = keys.map((key) => key.slice('r4:'.length))
      const [page] = await Promise.all([rotator.rotatePage(cursor),
        saveSoon(app, sidsOfPage, session({ version: 2 }))])
      for (const name of Object.keys(totals)) totals[name] += page[name]
      cursor = page.cursor
    } while (cursor !== '0')
    await scanner.close()

    const newOnly = await storeWith('r4:', [NEW])
    const versions = await Promise.all(sids.map(async (sid) => (await newOnly.get(sid))?.version))
    const stale = sids.filter((sid, i) => versions[i] !== 2)
    assert.deepEqual(stale, [], 'sessions lost their newer version')
    const { scanned, rotated, alreadyCurrent, changedMeanwhile, undecryptable } = totals
    assert.equal(rotated + alreadyCurrent + changedMeanwhile + undecryptable, scanned)
    assert.ok(changedMeanwhile > 0, 'no save came between a read and its write-back')
    console.log(`# live traffic: ${rotated} rotated, ${alreadyCurrent} already current, ` +
      `${changedMeanwhile} changed meanwhile`)
  })

  it('stops after --max-pages with its state saved, and the next run finishes', async () => {
    // Only this test's 200 sessions in the keyspace: three SCAN pages of COUNT 10 then find
    // some of them, never none (among the 2000 keys of the tests before, they could miss).
    await raw.sendCommand(['FLUSHDB'])
    const old = await storeWith('r5:', [OLD])
    await Promise.all(range(200).map((i) => old.set(`sid-${i}`, session({ i }))))
    const cwd = tempDir()
    const args = rotateArgs('r5:', '--scan-count', '10')

    const stopped = await cli([...args, '--max-pages', '3'], { cwd })
    const state = JSON.parse(fs.readFileSync(path.join(cwd, STATE_FILE), 'utf8'))
    const newOnly = await storeWith('r5:', [NEW])
    const readable = (await newOnly.all()).length
    const resumed = await cli(args, { cwd })

    assert.equal(stopped.code, 3, stopped.stderr)
    assert.match(stopped.stdout, /stopped after 3 page\(s\)/)
    assert.notEqual(state.cursor, '0')
    assert.equal(state.pages, 3)
    assert.equal(state.counts.rotated, readable)
    assert.ok(readable > 0 && readable < 200, `${readable} rotated after 3 pages`)
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.match(resumed.stderr, new RegExp(`resuming the rotation recorded in .*: ` +
      `${state.counts.scanned} keys done, cursor ${state.cursor}`))
    assert.match(resumed.stdout, /^rotated: +200 /m)
    assert.equal((await newOnly.all()).length, 200)
    assert.equal(fs.existsSync(path.join(cwd, STATE_FILE)), false)
  })

  it('a run killed midway is finished by the next one', async () => {
    const old = await storeWith('r6:', [OLD])
    await Promise.all(range(3000).map((i) => old.set(`sid-${i}`, session({ i }))))
    const cwd = tempDir()
    const statePath = path.join(cwd, 'rotation-state.json')
    const args = rotateArgs('r6:', '--scan-count', '5', '--state', statePath)

    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: 'ignore' })
    const exited = once(child, 'exit')
    await waitUntil(() => fs.existsSync(statePath), 20_000, 'no state file appeared')
    // Writes wait while paused, so the run cannot finish before it is killed.
    const admin = await server.client()
    await admin.sendCommand(['CLIENT', 'PAUSE', '10000', 'WRITE'])
    child.kill('SIGKILL')
    const [, signal] = await exited
    await admin.sendCommand(['CLIENT', 'UNPAUSE'])
    await admin.close()
    const state = JSON.parse(fs.readFileSync(statePath, 'utf8'))

    const resumed = await cli(args, { cwd })

    assert.equal(signal, 'SIGKILL', 'the first run ended before it was killed')
    assert.ok(state.counts.scanned < 3000, `${state.counts.scanned} scanned before the kill`)
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.match(resumed.stderr, /resuming the rotation/)
    const newOnly = await storeWith('r6:', [NEW])
    const loaded = await newOnly.all()
    assert.equal(loaded.length, 3000)
    assert.equal(fs.existsSync(statePath), false)
  })

  it('starts over when resumed with another first key', async () => {
    const other = crypto.randomBytes(32).toString('base64')
    const old = await storeWith('r7:', [OLD])
    await Promise.all(range(100).map((i) => old.set(`sid-${i}`, session({ i }))))
    const cwd = tempDir()
    const common = ['--url', server.url, '--prefix', 'r7:', '--scan-count', '10']

    const first = await cli(['rotate', ...common, '--key', other, '--key', OLD,
      '--max-pages', '2'], { cwd })
    const second = await cli(['rotate', ...common, '--key', NEW, '--key', other,
      '--key', OLD], { cwd })

    assert.equal(first.code, 3, first.stderr)
    assert.equal(second.code, 0, second.stderr)
    assert.match(second.stderr, /is not the one this rotation began with.*starting over/)
    const newOnly = await storeWith('r7:', [NEW])
    assert.equal((await newOnly.all()).length, 100)
  })

  describe('usage errors exit with 2 and say what is wrong', () => {
    const cases = [
      [['--key', 'K'], /needs the new key first and the old key\(s\) after it/],
      [['--secret', 'only-one'], /needs the new key first/],
      [['--bogus', 'x', '--key', 'a', '--key', 'b'], /unknown option --bogus/],
      [['--key', 'a', '--key', 'b', '--state'], /--state needs a value/],
      [['extra', '--secret', 'a', '--secret', 'b'], /rotate takes no argument/],
      [['--secret', 'a', '--secret', 'b', '--max-pages', '0'],
        /--max-pages must be a positive whole number/],
      [['--secret', 'a', '--secret', 'b', '--scan-count', 'many'],
        /--scan-count must be a positive whole number/],
      [['--key', 'not a key', '--key', 'b'], /encryptionKeys/],
    ]
    for (const [args, message] of cases) {
      it(args.join(' '), async () => {
        const run = await cli(['rotate', '--url', server.url, ...args])
        assert.equal(run.code, 2, run.stderr)
        assert.match(run.stderr, message)
        assert.doesNotMatch(run.stderr, /\[#*\.*\]/, 'it started rotating')
      })
    }

    it('a state file of another prefix is refused and kept', async () => {
      const old = await storeWith('r8:', [OLD])
      await Promise.all(range(50).map((i) => old.set(`sid-${i}`, session({ i }))))
      const cwd = tempDir()
      const first = await cli(rotateArgs('r8:', '--scan-count', '5', '--max-pages', '1'), { cwd })
      const saved = fs.readFileSync(path.join(cwd, STATE_FILE), 'utf8')
      const run = await cli(rotateArgs('other:'), { cwd })

      assert.equal(first.code, 3, first.stderr)
      assert.equal(run.code, 2, run.stderr)
      assert.match(run.stderr, /records the rotation of another Redis or prefix/)
      assert.equal(fs.readFileSync(path.join(cwd, STATE_FILE), 'utf8'), saved)
    })

    it('a damaged state file is refused', async () => {
      const cwd = tempDir()
      fs.writeFileSync(path.join(cwd, STATE_FILE), '{"version":1,"cursor":"x"')
      const run = await cli(rotateArgs('r9:'), { cwd })
      assert.equal(run.code, 2, run.stderr)
      assert.match(run.stderr, /is not a rotation state file; remove it to start over/)
    })
  })
})

describe('rotate on a Redis Cluster of 3 primaries', () => {
  let cluster
  let old

  before(async () => {
    cluster = await RedisCluster.start({ primaries: 3, replicasPerPrimary: 0 })
    old = new RedisStore({ cluster: cluster.seeds, secret: 's', encryptionKeys: [OLD] })
    await once(old, 'connect')
  })

  after(async () => {
    await old?.close()
    await cluster?.stop()
  })

  it('walks every primary, resumes from a cluster cursor, keeps tombstones', async () => {
    const sids = range(300).map((i) => `cluster-${i}`)
    await Promise.all(sids.map((sid, i) => old.set(sid, session({ i }))))
    await old.destroy(sids[0])
    const cwd = tempDir()
    const seeds = cluster.seeds.flatMap((seed) => ['--cluster', seed])
    const args = ['rotate', ...seeds, '--key', NEW, '--key', OLD, '--scan-count', '20']

    const stopped = await cli([...args, '--max-pages', '8'], { cwd })
    const state = JSON.parse(fs.readFileSync(path.join(cwd, STATE_FILE), 'utf8'))
    const resumed = await cli(args, { cwd })

    assert.equal(stopped.code, 3, stopped.stderr)
    assert.match(state.cursor, /^\d+:\d+:127\.0\.0\.1:\d+$/, 'index:cursor:address')
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.match(resumed.stderr, /resuming the rotation/)
    const newOnly = new RedisStore({ cluster: cluster.seeds, secret: 's', encryptionKeys: [NEW] })
    try {
      const loaded = await Promise.all(sids.slice(1).map((sid) => newOnly.get(sid)))
      assert.deepEqual(loaded.map((s) => s?.i), range(300).slice(1))
      assert.equal((await newOnly.scanStats()).tombstones, 1)
      assert.equal(await newOnly.get(sids[0]), null)
    } finally {
      await newOnly.close()
    }
  })
})

describe('rotate on a Redis Cluster whose primary fails over between two runs', () => {
  it('starts the walk over and re-seals every session', async () => {
    const cluster = await RedisCluster.start({ primaries: 3, replicasPerPrimary: 1 })
    const old = new RedisStore({ cluster: cluster.seeds, secret: 's', encryptionKeys: [OLD] })
    const newOnly = new RedisStore({ cluster: cluster.seeds, secret: 's', encryptionKeys: [NEW] })
    try {
      await Promise.all([once(old, 'connect'), once(newOnly, 'connect')])
      const sids = range(300).map((i) => `moved-${i}`)
      await Promise.all(sids.map((sid, i) => old.set(sid, session({ i }))))
      const cwd = tempDir()
      const seeds = cluster.seeds.flatMap((seed) => ['--cluster', seed])
      const args = ['rotate', ...seeds, '--key', NEW, '--key', OLD, '--scan-count', '20']

      const stopped = await cli([...args, '--max-pages', '2'], { cwd })
      assert.equal(stopped.code, 3, stopped.stderr)
      const { cursor } = JSON.parse(fs.readFileSync(path.join(cwd, STATE_FILE), 'utf8'))
      const walkedPort = Number(cursor.split(':').pop())
      await cluster.failover(walkedPort)

      const resumed = await cli(args, { cwd })
      assert.equal(resumed.code, 0, resumed.stderr)
      // An idle cluster connection can fail its first calls after a failover (within
      // commandTimeout); what is checked here is what is stored.
      const loaded = await retrying(() => Promise.all(sids.map((sid) => newOnly.get(sid))))
      assert.deepEqual(loaded.map((s) => s?.i), range(300), 'a session kept the old key')
    } finally {
      await old.close()
      await newOnly.close()
      await cluster.stop()
    }
  })
})

/** `fn()`, called again after a failure for up to 10 s. */
async function retrying(fn) {
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      return await fn()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}

/**
 * Saves `value` under every sid, each after a random number (up to 60) of turns of the event
 * loop: spread over about the time one rotation page takes.
 */
function saveSoon(store, sids, value) {
  return Promise.all(sids.map(async (sid) => {
    for (let turns = Math.random() * 60; turns > 0; turns--) await new Promise(setImmediate)
    await store.set(sid, value)
  }))
}

async function pttls(client, prefix, sids) {
  return Promise.all(sids.map((sid) => client.pTTL(`${prefix}${sid}`)))
}

function range(n) {
  return Array.from({ length: n }, (_, i) => i)
}

const tempDirs = []

/** A fresh temporary directory (the working directory of a run), removed after the tests. */
function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-rotate-'))
  tempDirs.push(dir)
  return dir
}

after(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

/** Runs the tool in `cwd` (a fresh temporary directory by default). */
function cli(args, { cwd = tempDir(), env = {} } = {}) {
  return new Promise((resolve) => {
    const options = { cwd, env: { ...process.env, ...env }, timeout: 60_000 }
    execFile(process.execPath, [BIN, ...args], options, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr, cwd })
    })
  })
}
