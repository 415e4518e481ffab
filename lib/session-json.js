'use strict'

/**
 * The JSON of a session, the very string `JSON.stringify` makes, in fewer instructions.
 *
 * V8 turns a Date into JSON (`toISOString`) through printf-style formatting: about 7k
 * instructions, a quarter of the whole `JSON.stringify` of a 250-byte session, and every
 * session carries one Date, its cookie's `expires`. This formats that one Date with integer
 * arithmetic and leaves everything else to `JSON.stringify`. Anything out of the ordinary
 * goes to `JSON.stringify` unchanged: a cookie that is not an untouched express-session
 * `Cookie`, a session with its own `toJSON`, an `expires` that is not a plain Date between
 * 1970 and 9999, or a `Date.prototype` whose JSON methods were replaced.
 * `__test__/session-json.test.js` compares the two outputs on random sessions.
 */

const { Cookie } = require('express-session')

const DATE_TO_JSON = Date.prototype.toJSON
const DATE_TO_ISO = Date.prototype.toISOString
const DATE_VALUE_OF = Date.prototype.valueOf
const DATE_TO_PRIMITIVE = Date.prototype[Symbol.toPrimitive]
const COOKIE_TO_JSON = Cookie.prototype.toJSON

/** Whether the Date methods are the engine's own (not replaced before this module loaded). */
const NATIVE_DATES = [DATE_TO_JSON, DATE_TO_ISO, DATE_VALUE_OF, DATE_TO_PRIMITIVE]
  .every((method) => Function.prototype.toString.call(method).includes('[native code]'))

const DAY_MS = 86_400_000
/** 10000-01-01T00:00:00.000Z: from there on `toISOString` writes six-digit years. */
const END_MS = 253_402_300_800_000

const TWO = Array.from({ length: 100 }, (_, n) => String(n).padStart(2, '0'))
const THREE = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'))

/** `JSON.stringify(session)`, with the cookie's expiry formatted here. */
function stringifySession(session) {
  const cookie = isObject(session) ? session.cookie : undefined
  if (!isPlainCookie(cookie) || typeof session.toJSON === 'function') {
    return JSON.stringify(session)
  }
  const data = cookie.toJSON('cookie')
  const expires = isoString(data.expires)
  if (expires === null) return JSON.stringify(session)

  // `data` is a fresh object; the session and its cookie are left as they are.
  data.expires = expires
  const view = {}
  for (const key of Object.keys(session)) {
    const value = key === 'cookie' ? data : session[key]
    // An own `__proto__` key stays a key: assigning it would set the view's prototype.
    if (key === '__proto__') defineOwn(view, key, value)
    else view[key] = value
  }
  return JSON.stringify(view)
}

function defineOwn(object, key, value) {
  const writable = { value, enumerable: true, writable: true, configurable: true }
  Object.defineProperty(object, key, writable)
}

function isPlainCookie(cookie) {
  return isObject(cookie) && Object.getPrototypeOf(cookie) === Cookie.prototype &&
    cookie.toJSON === COOKIE_TO_JSON
}

function isObject(value) {
  return value !== null && typeof value === 'object'
}

/**
 * A Date whose JSON is `toISOString` of its time value (or null when invalid), the engine's
 * own way: its prototype is Date's and none of the methods `toJSON` goes through was
 * replaced, on it or on `Date.prototype`.
 */
function isPlainDate(value) {
  return NATIVE_DATES && isObject(value) && Object.getPrototypeOf(value) === Date.prototype &&
    value.toJSON === DATE_TO_JSON && value.toISOString === DATE_TO_ISO &&
    value.valueOf === DATE_VALUE_OF && value[Symbol.toPrimitive] === DATE_TO_PRIMITIVE
}

/** `date.toISOString()` for a plain Date from 1970 to 9999, else null. */
function isoString(date) {
  if (!isPlainDate(date)) return null
  const ms = date.getTime()
  if (!(ms >= 0 && ms < END_MS)) return null

  const days = Math.floor(ms / DAY_MS)
  let rest = ms - days * DAY_MS
  const hour = Math.floor(rest / 3_600_000)
  rest -= hour * 3_600_000
  const minute = Math.floor(rest / 60_000)
  rest -= minute * 60_000
  const second = Math.floor(rest / 1000)
  const milli = rest - second * 1000

  const [year, month, day] = civilDate(days)
  return `${year}-${TWO[month]}-${TWO[day]}T${TWO[hour]}:${TWO[minute]}:${TWO[second]}.` +
    `${THREE[milli]}Z`
}

/**
 * Year, month (1-12) and day of the month of a count of days since 1970-01-01 (at least 0),
 * in the proleptic Gregorian calendar: H. Hinnant's days-to-civil algorithm.
 */
function civilDate(days) {
  const shifted = days + 719_468 // days since 0000-03-01
  const era = Math.floor(shifted / 146_097)
  const dayOfEra = shifted - era * 146_097
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) +
    Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365)
  const dayOfYear = dayOfEra -
    (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100))
  const shiftedMonth = Math.floor((5 * dayOfYear + 2) / 153) // 0 = March
  const day = dayOfYear - Math.floor((153 * shiftedMonth + 2) / 5) + 1
  const month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
  return [year, month, day]
}

/** The default serializer: this `stringify`, and `JSON.parse`. */
const SESSION_JSON = Object.freeze({ stringify: stringifySession, parse: JSON.parse })

module.exports = { SESSION_JSON, stringifySession, isoString, isPlainDate }
