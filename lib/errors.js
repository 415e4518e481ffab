'use strict'

/**
 * Errors of the store, and the one helper that serves callbacks and promises.
 *
 * Native errors arrive as `Error`s whose message starts with a stable code
 * (`ERR_REDIS: ...`); `fromNative` moves that code to `err.code`.
 */

const CODE_PREFIX = /^(ERR_[A-Z_]+): /

/** Codes of errors that are the caller's mistake: they surface as `TypeError`s. */
const TYPE_ERROR_CODES = new Set(['ERR_INVALID_ARG', 'ERR_INVALID_OPTION'])

/**
 * Moves the code prefix of a native error's message into `err.code`; a bad option or
 * argument becomes a `TypeError`, like the ones raised on the JS side.
 */
function fromNative(err) {
  if (!(err instanceof Error)) return new StoreError('ERR_INTERNAL', String(err))
  const match = CODE_PREFIX.exec(err.message)
  if (!match) return err

  const message = err.message.slice(match[0].length)
  const coded = TYPE_ERROR_CODES.has(match[1]) ? new TypeError(message) : err
  coded.message = message
  coded.code = match[1]
  return coded
}

/** The `Error` for a coded message from a native result batch (`ERR_REDIS: ...`). */
function errorFrom(message) {
  return fromNative(new Error(message))
}

/** An `Error` with a stable `code`, for failures found on the JS side. */
class StoreError extends Error {
  constructor(code, message) {
    super(message)
    this.name = 'StoreError'
    this.code = code
  }
}

/** A `TypeError` naming a constructor option. */
function optionError(option, reason) {
  const err = new TypeError(`invalid option \`${option}\`: ${reason}`)
  err.code = 'ERR_INVALID_OPTION'
  return err
}

/** A `TypeError` naming a method argument. */
function argumentError(argument, reason) {
  const err = new TypeError(`invalid argument \`${argument}\`: ${reason}`)
  err.code = 'ERR_INVALID_ARG'
  return err
}

/**
 * Returns `promise` when no callback is given; otherwise calls `cb(err)` or `cb(null, value)`
 * and returns undefined. A callback that throws is rethrown on its own tick, as any Node
 * callback API would, instead of turning into an unhandled rejection.
 */
function settle(promise, cb) {
  if (typeof cb !== 'function') return promise
  promise.then(
    (value) => invoke(cb, null, value),
    (err) => invoke(cb, err),
  )
  return undefined
}

/** Calls a node-style callback; a throw is rethrown on its own tick, never swallowed. */
function invoke(cb, err, value) {
  try {
    if (err) cb(err)
    else cb(null, value)
  } catch (thrown) {
    process.nextTick(() => {
      throw thrown
    })
  }
}

module.exports = {
  StoreError, argumentError, errorFrom, fromNative, invoke, optionError, settle,
}
