'use strict'

/**
 * The constructor options of `RedisStore`: defaults, type checks, and the split between what
 * stays in JS (ttl function, serializer) and what the native store receives.
 * Every refusal is a `TypeError` whose message names the option and never echoes its value.
 */

const { optionError } = require('./errors')
const { SESSION_JSON } = require('./session-json')

const DEFAULTS = Object.freeze({
  url: 'redis://127.0.0.1:6379',
  prefix: 'session:',
  ttl: 86400,
  cookieName: 'connect.sid',
  disableTouch: false,
  disableTTL: false,
  scanCount: 1000,
  commandTimeout: 2000,
  connectTimeout: 2000,
  reconnectMaxDelay: 500,
  maxSessionBytes: 1024 * 1024,
  tombstoneTtl: 300,
  userIndex: false,
  busyPollMicros: 100,
})

/** Where the per-user index keys go by default: beside the sessions, out of their prefix. */
const USER_INDEX_NAMESPACE = 'user-sessions:'

/** Validates `options` and returns `{ js, native }` settings. */
function normalizeOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw optionError('options', 'must be an object with at least `secret`')
  }

  const js = {
    prefix: stringOption(options, 'prefix', { allowEmpty: true }),
    ttl: ttlOption(options.ttl),
    cookieName: stringOption(options, 'cookieName'),
    disableTouch: booleanOption(options, 'disableTouch'),
    disableTTL: booleanOption(options, 'disableTTL'),
    serializer: serializerOption(options.serializer),
    logger: loggerOption(options.logger),
    userIndex: booleanOption(options, 'userIndex'),
  }
  const native = {
    url: urlOption(options.url),
    prefix: js.prefix,
    secrets: secretOption(options.secret),
    cluster: clusterOption(options.cluster),
    tls: tlsOption(options.tls),
    sentinel: sentinelOption(options.sentinel),
    encryptionKeys: keysOption(options.encryptionKeys),
    cookieName: js.cookieName,
    maxSessionBytes: countOption(options, 'maxSessionBytes'),
    commandTimeout: countOption(options, 'commandTimeout'),
    connectTimeout: countOption(options, 'connectTimeout'),
    reconnectMaxDelay: countOption(options, 'reconnectMaxDelay'),
    scanCount: countOption(options, 'scanCount'),
    tombstoneTtl: countOption(options, 'tombstoneTtl'),
    waitReplicas: optionalCount(options, 'waitReplicas'),
    waitTimeout: optionalCount(options, 'waitTimeout'),
    userIndexPrefix: js.userIndex ? userIndexPrefixOption(options, js.prefix) : undefined,
    legacyPrefix: legacyPrefixOption(options.legacyPrefix),
    busyPollMicros: busyPollOption(options.busyPollMicros),
    // Sessions read come cut into shape and values, built without JSON.parse (see
    // session-shape.js), unless an application serializer must read them.
    shapeSessions: js.serializer === SESSION_JSON,
  }
  return { js, native }
}

function urlOption(url) {
  const value = url === undefined ? process.env.REDIS_URL || DEFAULTS.url : url
  if (typeof value !== 'string' || value === '') {
    throw optionError('url', 'must be a redis:// or rediss:// URL string')
  }
  return value
}

function clusterOption(cluster) {
  if (cluster === undefined) return undefined
  const ok = Array.isArray(cluster) && cluster.length > 0 &&
    cluster.every((url) => typeof url === 'string' && url !== '')
  if (!ok) throw optionError('cluster', 'must be a non-empty array of seed node URLs')
  return cluster.slice()
}

/** `{ nodes: [urls], masterName }`: the primary is the one these sentinels name. */
function sentinelOption(sentinel) {
  if (sentinel === undefined) return undefined
  const ok = sentinel !== null && typeof sentinel === 'object' &&
    Array.isArray(sentinel.nodes) && sentinel.nodes.length > 0 &&
    sentinel.nodes.every((url) => typeof url === 'string' && url !== '') &&
    typeof sentinel.masterName === 'string' && sentinel.masterName !== ''
  if (!ok) throw optionError('sentinel', 'must be `{ nodes: [sentinel URLs], masterName }`')
  return { nodes: sentinel.nodes.slice(), masterName: sentinel.masterName }
}

/** `{ ca, cert, key }` as PEM strings or Buffers, for `rediss://`. */
function tlsOption(tls) {
  if (tls === undefined) return undefined
  if (tls === null || typeof tls !== 'object') {
    throw optionError('tls', 'must be an object with `ca`, `cert` and/or `key` (PEM)')
  }
  const out = {}
  for (const part of ['ca', 'cert', 'key']) {
    const value = tls[part]
    if (value === undefined) continue
    if (typeof value === 'string') out[part] = Buffer.from(value)
    else if (value instanceof Uint8Array) out[part] = Buffer.from(value)
    else throw optionError('tls', `\`${part}\` must be a PEM string or a Buffer`)
  }
  return out
}

function secretOption(secret) {
  const secrets = Array.isArray(secret) ? secret : [secret]
  if (secret === undefined || secret === null || secrets.length === 0) {
    throw optionError('secret', 'is required: the express-session secret (string or array)')
  }
  for (const item of secrets) {
    if (typeof item !== 'string' || item === '') {
      throw optionError('secret', 'must be a non-empty string or an array of them')
    }
  }
  return secrets.slice()
}

function keysOption(keys) {
  if (keys === undefined) return undefined
  if (!Array.isArray(keys) || keys.length === 0) {
    throw optionError('encryptionKeys', 'must be a non-empty array of 32-byte keys')
  }
  return keys.map((key) => {
    if (typeof key === 'string') return key
    if (key instanceof Uint8Array) return Buffer.from(key)
    throw optionError('encryptionKeys', 'each key must be a Buffer or a base64 string')
  })
}

function ttlOption(ttl) {
  if (ttl === undefined) return DEFAULTS.ttl
  if (typeof ttl === 'function') return ttl
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
    throw optionError('ttl', 'must be a positive number of seconds or a function')
  }
  return ttl
}

function serializerOption(serializer) {
  if (serializer === undefined) return SESSION_JSON
  const ok = serializer && typeof serializer.stringify === 'function' &&
    typeof serializer.parse === 'function'
  if (!ok) throw optionError('serializer', 'must have `stringify` and `parse` functions')
  return serializer
}

function loggerOption(logger) {
  if (logger === undefined || logger === null || logger === false) return null
  if (typeof logger !== 'object' && typeof logger !== 'function') {
    throw optionError('logger', 'must be an object with debug/warn/error (or log) methods')
  }
  return logger
}

/** `user-sessions:` + the session prefix, so that two stores sharing a Redis stay apart. */
function userIndexPrefixOption(options, prefix) {
  const value = options.userIndexPrefix === undefined
    ? USER_INDEX_NAMESPACE + prefix
    : stringOption(options, 'userIndexPrefix')
  // Overlapping names would let an index key pass for a session key, or the reverse.
  if (prefix !== '' && (value.startsWith(prefix) || prefix.startsWith(value))) {
    throw optionError('userIndexPrefix', 'must not start with `prefix`, nor `prefix` with it')
  }
  return value
}

/** connect-redis's prefix (`sess:` by default), to read its plaintext sessions. */
function legacyPrefixOption(legacyPrefix) {
  if (legacyPrefix === undefined) return undefined
  if (typeof legacyPrefix !== 'string' || legacyPrefix === '') {
    throw optionError('legacyPrefix',
      "must be a non-empty string, such as connect-redis's 'sess:'")
  }
  return legacyPrefix
}

function stringOption(options, name, { allowEmpty = false } = {}) {
  const value = options[name] === undefined ? DEFAULTS[name] : options[name]
  if (typeof value !== 'string' || (!allowEmpty && value === '')) {
    throw optionError(name, 'must be a non-empty string')
  }
  return value
}

function booleanOption(options, name) {
  const value = options[name] === undefined ? DEFAULTS[name] : options[name]
  if (typeof value !== 'boolean') throw optionError(name, 'must be true or false')
  return value
}

/** Microseconds the native dispatcher keeps looking for requests after each event; 0: never. */
function busyPollOption(value) {
  const micros = value === undefined ? DEFAULTS.busyPollMicros : value
  if (!Number.isSafeInteger(micros) || micros < 0 || micros > 1000) {
    throw optionError('busyPollMicros', 'must be a whole number of microseconds from 0 to 1000')
  }
  return micros
}

function optionalCount(options, name) {
  return options[name] === undefined ? undefined : countOption(options, name)
}

function countOption(options, name) {
  const value = options[name] === undefined ? DEFAULTS[name] : options[name]
  if (!Number.isSafeInteger(value) || value < 1) {
    throw optionError(name, 'must be a positive whole number')
  }
  return value
}

module.exports = { DEFAULTS, normalizeOptions }
