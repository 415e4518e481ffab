'use strict'

/**
 * Logging in Node's manner: silent unless `DEBUG` names this package (as the `debug` package
 * reads it: comma-separated patterns, `*` wildcards, `-` to exclude) or a `logger` option is
 * given. Callers pass only fixed text and error codes: never a session id, key, secret or
 * session content.
 */

const NAMESPACE = 'sealed-redis-session'

/** A `{ debug, warn, error }` logger, or null when logging is off. */
function createLogger(logger, debugEnv) {
  if (logger) return fromLogger(logger)
  if (!enabledByDebug(debugEnv || '')) return null
  const write = (level) => (message) => {
    process.stderr.write(`${new Date().toISOString()} ${NAMESPACE}:${level} ${message}\n`)
  }
  return { debug: write('debug'), warn: write('warn'), error: write('error') }
}

/** Adapts a console-like or pino-like logger; missing levels fall back to `log`/`info`. */
function fromLogger(logger) {
  const fallback = pick(logger, 'log') || pick(logger, 'info') || (() => {})
  return {
    debug: pick(logger, 'debug') || fallback,
    warn: pick(logger, 'warn') || fallback,
    error: pick(logger, 'error') || fallback,
  }
}

function pick(logger, level) {
  return typeof logger[level] === 'function' ? (message) => logger[level](message) : null
}

/** Whether `DEBUG` enables this package, with the `debug` package's pattern rules. */
function enabledByDebug(debugEnv) {
  let enabled = false
  for (const raw of debugEnv.split(/[\s,]+/).filter(Boolean)) {
    const negated = raw.startsWith('-')
    const pattern = negated ? raw.slice(1) : raw
    if (matches(pattern, `${NAMESPACE}:debug`)) enabled = !negated
  }
  return enabled
}

/** Whether a `DEBUG` pattern names this package (`sealed-redis-session` or any level of it). */
function matches(pattern, name) {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')
  const regex = new RegExp(`^${escaped}$`)
  return regex.test(name) || regex.test(NAMESPACE)
}

module.exports = { createLogger, enabledByDebug }
