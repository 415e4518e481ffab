'use strict'

/**
 * The command-line tool: `keygen`, `inspect <sid>`, `stats`. Connection and keys come from
 * flags or the environment (REDIS_URL, SESSION_SECRET, SESSION_KEYS), like the application's.
 */

const crypto = require('node:crypto')

const USAGE = `usage: sealed-redis-session <command> [options]

commands:
  keygen            print a new random 32-byte key, base64 (for encryptionKeys)
  inspect <sid>     show the TTL and decrypted JSON of one session (personal data!)
  stats             count sessions, their memory, TTL spread and sealing keys

options (inspect, stats):
  --url <url>       Redis URL (default: $REDIS_URL or redis://127.0.0.1:6379)
  --prefix <p>      key prefix (default: session:)
  --secret <s>      a session secret; repeat for several (default: $SESSION_SECRET)
  --key <base64>    an encryption key; repeat for several (default: $SESSION_KEYS, comma-separated)
`

/** Runs the tool with `argv` (without `node` and the script); resolves to an exit code. */
async function main(argv, io = { out: process.stdout, err: process.stderr, env: process.env }) {
  const [command, ...rest] = argv
  if (command === 'keygen') {
    io.out.write(`${crypto.randomBytes(32).toString('base64')}\n`)
    return 0
  }
  if (command !== 'inspect' && command !== 'stats') {
    io.err.write(USAGE)
    return command === undefined || command === '--help' ? 0 : 2
  }

  const { flags, positional } = parseFlags(rest)
  const store = openStore(flags, io.env)
  try {
    if (command === 'inspect') return await inspect(store, positional[0], io)
    return await stats(store, io)
  } finally {
    await store.close()
  }
}

async function inspect(store, sid, io) {
  if (!sid) {
    io.err.write('inspect needs a session id\n')
    return 2
  }
  io.err.write('warning: the output contains personal data; handle it accordingly\n')
  const found = await store.inspect(sid)
  const ttl = found.ttlMs === -1 ? 'no expiry' : found.ttlMs < 0 ? '-' : formatMs(found.ttlMs)
  io.out.write(`key:     ${store.prefix}${sid}\nstate:   ${found.kind}\nttl:     ${ttl}\n`)
  if (found.keyId) io.out.write(`key id:  ${found.keyId}\n`)
  if (found.session) io.out.write(`${JSON.stringify(found.session, null, 2)}\n`)
  return found.kind === 'session' ? 0 : 1
}

async function stats(store, io) {
  const started = Date.now()
  const totals = await store.scanStats((sofar) => {
    io.err.write(`\rscanned ${sofar.sessions + sofar.tombstones} keys...`)
  })
  io.err.write('\n')
  io.out.write(formatStats(totals, Date.now() - started))
  return 0
}

function formatStats(totals, elapsedMs) {
  const average = totals.sessions ? Math.round(totals.sessionBytes / totals.sessions) : 0
  const lines = [
    `sessions:    ${totals.sessions}`,
    `tombstones:  ${totals.tombstones} (destroyed sessions refusing late writes)`,
    `memory:      ${totals.sessionBytes} bytes in sessions, ${average} bytes on average`,
    'ttl spread:',
    ...ttlSpread(totals.ttlsMs).map(([label, count]) => `  ${label.padEnd(14)} ${count}`),
    'sealing keys:',
    ...Object.entries(totals.keyIds).map(([id, count]) => `  ${id.padEnd(14)} ${count}`),
    `scanned in ${elapsedMs} ms`,
  ]
  return `${lines.join('\n')}\n`
}

const HOUR = 3_600_000
const BUCKETS = [['< 1 hour', HOUR], ['< 1 day', 24 * HOUR], ['< 7 days', 168 * HOUR]]

function ttlSpread(ttls) {
  const counts = new Map([...BUCKETS.map(([label]) => [label, 0]), ['>= 7 days', 0],
    ['no expiry', 0]])
  for (const ttl of ttls) {
    const bucket = ttl < 0 ? 'no expiry'
      : (BUCKETS.find(([, limit]) => ttl < limit) || ['>= 7 days'])[0]
    counts.set(bucket, counts.get(bucket) + 1)
  }
  return [...counts.entries()]
}

function formatMs(ms) {
  const seconds = Math.round(ms / 1000)
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60]
  return `${h}h ${m}m ${s}s (${ms} ms)`
}

function parseFlags(args) {
  const flags = { secret: [], key: [] }
  const positional = []
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith('--') ? args[i].slice(2) : null
    if (name === null) positional.push(args[i])
    else if (Array.isArray(flags[name])) flags[name].push(args[++i])
    else flags[name] = args[++i]
  }
  return { flags, positional }
}

function openStore(flags, env) {
  const { RedisStore } = require('..')
  const secrets = flags.secret.length ? flags.secret : [env.SESSION_SECRET].filter(Boolean)
  const keys = flags.key.length ? flags.key
    : (env.SESSION_KEYS || '').split(',').filter(Boolean)
  return new RedisStore({
    url: flags.url || env.REDIS_URL,
    prefix: flags.prefix,
    secret: secrets.length ? secrets : undefined,
    encryptionKeys: keys.length ? keys : undefined,
  })
}

module.exports = { main }
