'use strict'

/**
 * sealed-redis-session: an express-session store over Redis whose values are sealed with
 * AES-256-GCM. This file only adapts the native store to express-session's `Store`: JSON
 * is made and parsed here in V8, everything else happens in Rust.
 */

const { Store } = require('express-session')
const native = require('./native.js')
const { StoreError, argumentError, fromNative, settle } = require('./lib/errors')
const { normalizeOptions } = require('./lib/options')

class RedisStore extends Store {
  #native
  #serializer
  #ttl
  #disableTouch
  #disableTTL

  /** See README: `secret` is required; every other option has a default. */
  constructor(options) {
    super()
    const { js, native: nativeOptions } = normalizeOptions(options)
    this.prefix = js.prefix
    this.cookieName = js.cookieName
    this.#serializer = js.serializer
    this.#ttl = js.ttl
    this.#disableTouch = js.disableTouch
    this.#disableTTL = js.disableTTL

    try {
      this.#native = new native.NativeStore(nativeOptions, ([event, detail]) =>
        this.#onLink(event, detail))
    } catch (err) {
      throw fromNative(err)
    }
  }

  get(sid, cb) {
    return settle(this.#get(sid), cb)
  }

  set(sid, session, cb) {
    return settle(this.#set(sid, session), cb)
  }

  touch(sid, session, cb) {
    return settle(this.#touch(sid, session), cb)
  }

  destroy(sid, cb) {
    return settle(this.#destroy(sid), cb)
  }

  all(cb) {
    return settle(this.#all(), cb)
  }

  length(cb) {
    return settle(this.#call(() => this.#native.length()), cb)
  }

  ids(cb) {
    return settle(this.#call(() => this.#native.ids()), cb)
  }

  clear(cb) {
    return settle(this.#call(() => this.#native.clear()).then(() => undefined), cb)
  }

  /** The session named by the signed cookie in a raw `Cookie` header, or `null`. */
  async getSessionFromRawCookie(rawCookie) {
    if (typeof rawCookie !== 'string' || rawCookie === '') return null
    const json = await this.#call(() => this.#native.sessionFromCookie(rawCookie))
      .catch((err) => this.#unreadable(err))
    return this.#parse(json)
  }

  /** The `userId` of the session named by `req.headers.cookie`, or `null`. */
  async getUserIdFromCookie(req) {
    const cookie = req && req.headers ? req.headers.cookie : undefined
    const session = await this.getSessionFromRawCookie(cookie)
    const userId = session ? session.userId : undefined
    if (userId === undefined || userId === null) return null
    return String(userId)
  }

  /** Logs `userId` in: a new session id (against fixation), `userId` set, saved. */
  saveSession(req, userId) {
    if (!req || !req.session || typeof req.session.regenerate !== 'function') {
      return Promise.reject(argumentError('req', 'has no session: is express-session mounted?'))
    }
    if (typeof userId !== 'string' || userId === '') {
      return Promise.reject(argumentError('userId', 'must be a non-empty string'))
    }
    return new Promise((resolve, reject) => {
      req.session.regenerate((err) => {
        if (err) return reject(err)
        req.session.userId = userId
        req.session.save((saveErr) => (saveErr ? reject(saveErr) : resolve()))
      })
    })
  }

  /** Removes the session `sid`. */
  destroySession(sid) {
    return this.#destroy(sid)
  }

  /** Closes the connection; calls in flight settle, later calls fail with `ERR_CLOSED`. */
  close() {
    return this.#call(() => this.#native.close())
  }

  #get(sid) {
    return this.#withSid(sid, () => this.#native.get(sid))
      .catch((err) => this.#unreadable(err))
      .then((json) => this.#parse(json))
  }

  #set(sid, session) {
    let json
    let lifetime
    try {
      json = this.#serialize(session)
      lifetime = this.#lifetime(session)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#withSid(sid, () =>
      this.#native.set(sid, json, lifetime.expiresAt, lifetime.ttl))
  }

  #touch(sid, session) {
    if (this.#disableTouch || this.#disableTTL) return Promise.resolve()
    let lifetime
    try {
      lifetime = this.#lifetime(session)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#withSid(sid, () => this.#native.touch(sid, lifetime.expiresAt, lifetime.ttl))
  }

  #destroy(sid) {
    return this.#withSid(sid, () => this.#native.destroy(sid))
  }

  async #all() {
    const { sessions, undecryptable } = await this.#call(() => this.#native.all())
    if (undecryptable > 0) {
      this.#report(new StoreError('ERR_DECRYPT',
        `${undecryptable} stored session(s) could not be decrypted`))
    }
    const out = []
    for (const { sid, json } of sessions) {
      const session = this.#parse(json)
      if (session !== null && typeof session === 'object') {
        session.id = sid
        out.push(session)
      }
    }
    return out
  }

  /** Runs a native call, turning a synchronous throw into a rejection and coding errors. */
  #call(fn) {
    try {
      return fn().catch((err) => {
        throw fromNative(err)
      })
    } catch (err) {
      return Promise.reject(fromNative(err))
    }
  }

  #withSid(sid, fn) {
    if (typeof sid !== 'string') {
      return Promise.reject(argumentError('sid', 'must be a string'))
    }
    // A lone surrogate would reach Rust as U+FFFD and name another sid's key.
    if (!sid.isWellFormed()) {
      return Promise.reject(argumentError('sid', 'must be well-formed UTF-16'))
    }
    return this.#call(fn)
  }

  #serialize(session) {
    if (session === null || typeof session !== 'object') {
      throw argumentError('session', 'must be an object')
    }
    let json
    try {
      json = this.#serializer.stringify(session)
    } catch (err) {
      throw argumentError('session', `cannot be serialised (${err.message})`)
    }
    if (typeof json !== 'string') {
      throw argumentError('session', 'the serializer did not return a string')
    }
    return json
  }

  /** `{ expiresAt, ttl }` for the native store: cookie expiry (epoch ms) or TTL (s). */
  #lifetime(session) {
    if (this.#disableTTL) return { expiresAt: null, ttl: null }
    const expiresAt = cookieExpiry(session)
    if (expiresAt !== null) return { expiresAt, ttl: null }
    const ttl = typeof this.#ttl === 'function' ? this.#ttl(session) : this.#ttl
    if (typeof ttl !== 'number' || Number.isNaN(ttl)) {
      throw argumentError('ttl', 'the ttl function must return a number of seconds')
    }
    return { expiresAt: null, ttl }
  }

  /** A decrypt failure reads as no session and is reported; anything else propagates. */
  #unreadable(err) {
    if (err && err.code === 'ERR_DECRYPT') {
      this.#report(err)
      return null
    }
    throw err
  }

  #parse(json) {
    if (json === null || json === undefined) return null
    try {
      return this.#serializer.parse(json)
    } catch {
      this.#report(new StoreError('ERR_DECRYPT', 'a decrypted session is not valid JSON'))
      return null
    }
  }

  #onLink(event, detail) {
    if (event === 'connect') this.emit('connect')
    else if (event === 'disconnect') this.emit('disconnect', detail)
  }

  /** Emits `error` only when someone listens: an unheard `error` would crash the process. */
  #report(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }
}

/** The cookie's `expires` in epoch ms, or null when it has none (a Date, or its JSON). */
function cookieExpiry(session) {
  const expires = session && session.cookie ? session.cookie.expires : undefined
  if (expires === undefined || expires === null || expires === false) return null
  if (!(expires instanceof Date) && typeof expires !== 'string' && typeof expires !== 'number') {
    throw argumentError('session', '`cookie.expires` must be a Date, a string or a number')
  }
  const at = new Date(expires).getTime()
  return Number.isFinite(at) ? at : null
}

/** `cookie-signature`'s `sign`, byte for byte. */
function sign(value, secret) {
  if (typeof value !== 'string') throw argumentError('value', 'must be a string')
  if (typeof secret !== 'string') throw argumentError('secret', 'must be a string')
  return native.sign(value, secret)
}

/** `cookie-signature`'s `unsign` over one secret or several; `false` when none matches. */
function unsign(input, secret) {
  const secrets = Array.isArray(secret) ? secret : [secret]
  if (secrets.length === 0 || !secrets.every((s) => typeof s === 'string')) {
    throw argumentError('secret', 'must be a string or a non-empty array of strings')
  }
  if (typeof input !== 'string') return false
  const value = native.unsign(input, secrets)
  return value === null ? false : value
}

module.exports = { RedisStore, sign, unsign }
