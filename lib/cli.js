'use strict'

/**
 * The command-line tool: `keygen`, `inspect <sid>`, `stats`, `rotate`. Connection and keys
 * come from flags or the environment (REDIS_URL, SESSION_SECRET, SESSION_KEYS), like the
 * application's.
 */

const crypto = require('node:crypto')
const { UsageError, positiveInteger, rotate, rotateOptions } = require('./rotate')

const USAGE = `usage: sealed-redis-session <command> [options]

commands:
  keygen            print a new random 32-byte key, base64 (for encryptionKeys)
  inspect <sid>     show the TTL and decrypted JSON of one session (personal data!)
  stats             count sessions, their memory, TTL spread and sealing keys
  rotate            re-seal every session with the first key, keeping TTLs (resumable)

options (inspect, stats, rotate):
  --url <url>       Redis URL (default: $REDIS_URL or redis://127.0.0.1:6379)
  --cluster <url>   a seed node of a Redis Cluster, instead of --url; repeat for several
  --prefix <p>      key prefix (default: session:)
  --secret <s>      a session secret; repeat for several (default: $SESSION_SECRET)
  --key <base64>    an encryption key; repeat for several (default: $SESSION_KEYS, comma-separated)
  --scan-count <n>  COUNT hint of each SCAN step (default: 1000)

rotate: the first key seals, every key opens (--key NEW --key OLD, or --secret NEW
--secret OLD when the keys are derived from the secrets); values already on the first key,
values that open with no key, and values changed meanwhile by live traffic are left alone.
  --state <file>    resume point, written after every page and removed at the end
                    (default: ./.sealed-redis-session-rotate.json)
  --max-pages <n>   stop after n pages; the same command continues from the state file

exit codes: 0 done; 1 failed, or (rotate) some values opened with no key; 2 usage error;
3 (rotate) stopped by --max-pages before the end
`

const COMMANDS = new Set(['inspect', 'stats', 'rotate'])

/** Flags taking one value, and flags that may repeat (collected in arrays). */
const SINGLE_FLAGS = new Set(['url', 'prefix', 'state', 'scan-count', 'max-pages'])
const REPEATED_FLAGS = new Set(['cluster', 'secret', 'key'])

/**
 * The secret given to the store when only encryption keys are: the tool signs no cookie, so
 * the secret is not used, and the keys alone decide what opens.
 */
const UNUSED_SECRET = 'unused: the command-line tool signs no cookie'

/** Runs the tool with `argv` (without `node` and the script); resolves to an exit code. */
async function main(argv, io = { out: process.stdout, err: process.stderr, env: process.env }) {
  const [command, ...rest] = argv
  if (command === 'keygen') {
    io.out.write(`${crypto.randomBytes(32).toString('base64')}\n`)
    return 0
  }
  if (!COMMANDS.has(command)) {
    io.err.write(USAGE)
    return command === undefined || command === '--help' ? 0 : 2
  }

  try {
    return await run(command, parseFlags(rest), io)
  } catch (err) {
    if (!(err instanceof UsageError) && err.code !== 'ERR_INVALID_OPTION') throw err
    io.err.write(`sealed-redis-session ${command}: ${err.message}\n` +
      'run `sealed-redis-session --help` for the usage\n')
    return 2
  }
}

async function run(command, { flags, positional }, io) {
  const walk = { keyCount: keyCount(flags, io.env), redis: redisName(flags, io.env) }
  const options = command === 'rotate' ? rotateOptions(flags, positional, walk) : null
  const store = openStore(flags, io.env)
  try {
    if (command === 'inspect') return await inspect(store, positional[0], io)
    if (command === 'stats') return await stats(store, io)
    return await rotate(store, options, io)
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

/** `--name value` pairs and positional arguments; a UsageError for anything unknown. */
function parseFlags(args) {
  const flags = { cluster: [], secret: [], key: [] }
  const positional = []
  for (let i = 0; i < args.length; i++) {
    if (!args[i].startsWith('--')) {
      positional.push(args[i])
      continue
    }
    const name = args[i].slice(2)
    if (!SINGLE_FLAGS.has(name) && !REPEATED_FLAGS.has(name)) {
      throw new UsageError(`unknown option ${args[i]}`)
    }
    const value = args[++i]
    if (value === undefined) throw new UsageError(`${args[i - 1]} needs a value`)
    if (REPEATED_FLAGS.has(name)) flags[name].push(value)
    else flags[name] = value
  }
  return { flags, positional }
}

function secretsFrom(flags, env) {
  return flags.secret.length ? flags.secret : [env.SESSION_SECRET].filter(Boolean)
}

function keysFrom(flags, env) {
  return flags.key.length ? flags.key : (env.SESSION_KEYS || '').split(',').filter(Boolean)
}

/** How many encryption keys the store will hold: the keys given, else one per secret. */
function keyCount(flags, env) {
  return keysFrom(flags, env).length || secretsFrom(flags, env).length
}

/** The Redis deployment, without credentials (for the rotation's state file). */
function redisName(flags, env) {
  if (flags.cluster.length) return `cluster ${flags.cluster.map(withoutCredentials).sort()}`
  return withoutCredentials(flags.url || env.REDIS_URL || 'redis://127.0.0.1:6379')
}

function withoutCredentials(url) {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.toString()
  } catch {
    return 'an unparsable URL'
  }
}

function openStore(flags, env) {
  const { RedisStore } = require('..')
  const secrets = secretsFrom(flags, env)
  const keys = keysFrom(flags, env)
  const scanCount = flags['scan-count'] === undefined ? undefined
    : positiveInteger('--scan-count', flags['scan-count'])
  return new RedisStore({
    url: flags.url || env.REDIS_URL,
    cluster: flags.cluster.length ? flags.cluster : undefined,
    prefix: flags.prefix,
    secret: secrets.length ? secrets : keys.length ? UNUSED_SECRET : undefined,
    encryptionKeys: keys.length ? keys : undefined,
    scanCount,
  })
}

module.exports = { main }
