'use strict'

/**
 * sealed-redis-session: an express-session store over Redis whose values are sealed with
 * AES-256-GCM. This file only adapts the native store to express-session's `Store`: the
 * session objects live here in V8 (read and built by shape, see lib/session-encoder.js and
 * lib/session-shape.js), everything else happens in Rust.
 */

const { Store } = require('express-session')
const native = require('./native.js')
const {
  StoreError, argumentError, errorFrom, fromNative, invoke, settle,
} = require('./lib/errors')
const { createLogger } = require('./lib/log')
const { normalizeOptions } = require('./lib/options')
const { shapeBuilder, CAN_COMPILE } = require('./lib/session-shape')
const { SessionEncoder } = require('./lib/session-encoder')
const { RequestBatch, callIds } = require('./lib/request-batch')

/** Operation codes of the native `flushOps` (see src/batch_wire.rs). */
const OP_GET = 0
const OP_SET = 1
const OP_TOUCH = 2
const OP_DESTROY = 3
const OP_SESSION_FROM_COOKIE = 4

/** Numbers per outcome in a result batch. */
const OUTCOME_LEN = 3

/** Statuses in the native result batches. */
const STATUS_OK = 0
const STATUS_FAILED = 1
const STATUS_CONNECTED = 2
const STATUS_DISCONNECTED = 3
const STATUS_SHAPE = 4
const STATUS_SHAPED = 5

/** Numbers before the slots of a session read that came cut: id, status, shape, slots. */
const SHAPED_LEN = 4

class RedisStore extends Store {
  #native
  #dispatcher
  #serializer
  #ttl
  #disableTouch
  #disableTTL
  #userIndex
  #log
  // The builders of the shapes of sessions read, by shape number (see session-shape.js).
  #shapes = []
  // Listeners of session ends, and whether the native side is watching for them.
  #endListeners = []
  // Calls in flight, by id: the caller's callback and how to finish its result. Parallel
  // arrays with recycled ids keep the hot path free of per-call objects.
  #callbacks = []
  #finishers = []
  #freeIds = []
  // Sessions written as their shape's values rather than JSON (see session-encoder.js), or
  // null when an application serializer writes them.
  #encoder = null
  // Operations of this turn of the event loop, handed to Rust together in its check phase
  // (setImmediate), after every I/O callback of the turn: a server that handles several
  // requests per turn wakes the native thread once for all their calls. Those that the
  // callbacks of a batch of results make go as soon as the batch is done (see #onBatch).
  #batch = new RequestBatch()
  #flushScheduled = false
  #delivering = false
  #flush = () => {
    this.#flushScheduled = false
    if (this.#batch.isEmpty) return
    const { text, records, values } = this.#batch.take()
    try {
      native.flushOps(this.#dispatcher, text, records, values)
    } catch (err) {
      this.#refuseAll(callIds(records), fromNative(err))
    }
  }

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
    this.#userIndex = js.userIndex
    this.#log = createLogger(js.logger, process.env.DEBUG)
    if (CAN_COMPILE && nativeOptions.shapeSessions) this.#encoder = new SessionEncoder()

    try {
      this.#native = new native.NativeStore(nativeOptions,
        (numbers, count, text, all, ...texts) =>
          this.#onBatch(numbers, count, text, all === undefined ? texts : all))
      this.#dispatcher = this.#native.dispatcher()
    } catch (err) {
      throw fromNative(err)
    }
  }

  get(sid, cb) {
    return this.#run(OP_GET, sid, null, null, null, null, this.#finishSession, cb)
  }

  set(sid, session, cb) {
    let json
    let lifetime
    let owner
    try {
      json = this.#written(session)
      lifetime = this.#lifetime(session)
      owner = this.#owner(session)
    } catch (err) {
      return fail(err, cb)
    }
    const { expiresAt, ttl } = lifetime
    return this.#run(OP_SET, sid, json, expiresAt, ttl, owner, finishPlain, cb)
  }

  touch(sid, session, cb) {
    if (this.#disableTouch || this.#disableTTL) return succeed(cb)
    let lifetime
    try {
      lifetime = this.#lifetime(session)
    } catch (err) {
      return fail(err, cb)
    }
    const { expiresAt, ttl } = lifetime
    return this.#run(OP_TOUCH, sid, null, expiresAt, ttl, this.#owner(session), finishPlain, cb)
  }

  destroy(sid, cb) {
    return this.#run(OP_DESTROY, sid, null, null, null, null, finishPlain, cb)
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
  getSessionFromRawCookie(rawCookie) {
    if (typeof rawCookie !== 'string' || rawCookie === '') return Promise.resolve(null)
    if (!rawCookie.isWellFormed()) return Promise.resolve(null)
    const finish = this.#finishSession
    return this.#run(OP_SESSION_FROM_COOKIE, rawCookie, null, null, null, null, finish)
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
    return this.destroy(sid)
  }

  /**
   * Counters since the store started: `{ hits, misses, errors, undecryptable }`, the last by
   * the id of the key that sealed the value (see `scanStats` for what is stored now). When
   * an old key no longer shows up here or in `scanStats`, it can be retired.
   */
  stats() {
    return this.#native.counters()
  }

  /**
   * What is stored for `sid`: `{ kind, ttlMs, session, keyId }`, `kind` being `missing`,
   * `tombstone`, `session` or `undecryptable`. For support work: it shows personal data.
   */
  async inspect(sid) {
    if (typeof sid !== 'string') throw argumentError('sid', 'must be a string')
    const found = await this.#call(() => this.#native.inspect(sid))
    const session = found.json ? this.#parse(found.json) : null
    return { kind: found.kind, ttlMs: found.ttlMs, session, keyId: found.keyId ?? null }
  }

  /**
   * Walks every key under the prefix with SCAN and sums them up: `{ sessions, tombstones,
   * sessionBytes, ttlsMs, keyIds }`. `onPage(totalsSoFar)` is called after each step.
   */
  async scanStats(onPage) {
    const totals = { sessions: 0, tombstones: 0, sessionBytes: 0, ttlsMs: [], keyIds: {} }
    let cursor = '0'
    do {
      const page = await this.#call(() => this.#native.statsPage(cursor))
      addPage(totals, page)
      if (typeof onPage === 'function') onPage(totals)
      cursor = page.cursor
    } while (cursor !== '0')
    return totals
  }

  /**
   * The live sessions of `userId` (needs `userIndex: true`), from the per-user index, each
   * checked against its stored session: `[{ sid, ttlMs, lastWrite }]`, `ttlMs` -1 when the
   * session has no expiry, `lastWrite` the Date of its last save or touch.
   */
  async listUserSessions(userId) {
    const user = userIdArgument(userId)
    const { mine } = await this.#userSessions(user)
    return mine.map(({ sid, ttlMs, lastWrite }) =>
      ({ sid, ttlMs, lastWrite: new Date(lastWrite) }))
  }

  /**
   * Logs `userId` out everywhere (needs `userIndex: true`): destroys every session of the
   * user, as `destroy` does, so each end reaches `onSessionEnd` listeners on every instance.
   * A login still being saved is refused too. Resolves to how many live sessions ended.
   */
  async destroyUserSessions(userId) {
    const user = userIdArgument(userId)
    const { mine, pending } = await this.#userSessions(user)
    const sids = [...mine.map((session) => session.sid), ...pending]
    if (sids.length > 0) await this.#call(() => this.#native.destroyUserSessions(user, sids))
    return mine.length
  }

  /**
   * Calls `listener({ sid, reason })` whenever a session ends on any instance sharing this
   * Redis: `reason` is `destroyed` (logout, `destroyUserSessions`), `expired` or `evicted`
   * (these two need keyspace notifications: `notify-keyspace-events Ex`). Returns a function
   * that removes the listener. See `sessionEndsReady()`.
   */
  onSessionEnd(listener) {
    if (typeof listener !== 'function') throw argumentError('listener', 'must be a function')
    if (this.#endListeners.length === 0) {
      try {
        this.#native.watchSessionEnds(([sid, reason]) => this.#sessionEnded(sid, reason))
      } catch (err) {
        throw fromNative(err)
      }
    }
    this.#endListeners.push(listener)
    let removed = false
    return () => {
      if (removed) return
      removed = true
      this.#endListeners.splice(this.#endListeners.indexOf(listener), 1)
      if (this.#endListeners.length === 0) this.#native.unwatchSessionEnds()
    }
  }

  /**
   * Resolves to `true` once every subscription for session ends is in place (on a cluster,
   * one per primary), so that ends from then on are heard, or to `false` if that did not
   * happen within the connect and command timeouts, as while Redis is down. Subscriptions
   * keep trying in the background, and reconnect after any loss by themselves.
   */
  sessionEndsReady() {
    if (this.#endListeners.length === 0) return Promise.resolve(false)
    return this.#call(() => this.#native.sessionEndsSubscribed())
  }

  /**
   * Disconnects the socket.io sockets of every session that ends, on any instance: give it
   * the socket.io `Server` (all its namespaces, present and future) or one `Namespace`.
   * Each socket is tied to the session named by its handshake's Cookie header. Returns a
   * function that stops it.
   */
  closeSocketsOnSessionEnd(io) {
    const namespaces = socketNamespaces(io)
    const tie = (socket) => {
      const sid = this.#native.sidFromCookie(String(socket.handshake.headers.cookie || ''))
      if (sid !== null) socket.join(SOCKET_ROOM + sid)
    }
    const follow = (namespace) => {
      namespace.on('connection', tie)
      for (const socket of namespace.sockets.values()) tie(socket)
    }
    namespaces.present.forEach(follow)
    if (namespaces.future !== null) namespaces.future.on('new_namespace', follow)

    const stopListening = this.onSessionEnd(({ sid }) => {
      for (const namespace of namespaces.all()) {
        namespace.local.in(SOCKET_ROOM + sid).disconnectSockets(true)
      }
    })
    return () => {
      stopListening()
      if (namespaces.future !== null) namespaces.future.off('new_namespace', follow)
      for (const namespace of namespaces.all()) namespace.off('connection', tie)
    }
  }

  /**
   * One step of key rotation from `cursor` ('0' to start): the sessions found by one SCAN
   * step are re-sealed with the first key, each only if it still holds what was read, keeping
   * its TTL. Resolves to `{ cursor, scanned, rotated, alreadyCurrent, changedMeanwhile,
   * undecryptable, keyId }`; the walk is over when `cursor` is '0'.
   */
  rotatePage(cursor = '0') {
    if (typeof cursor !== 'string') {
      return Promise.reject(argumentError('cursor', 'must be a string'))
    }
    return this.#call(() => this.#native.rotatePage(cursor))
  }

  /**
   * One step of counting the sessions under the prefix from `cursor` ('0' to start):
   * `{ cursor, keys }`. Unlike `length()`, a walk of these keeps nothing in memory.
   */
  countPage(cursor = '0') {
    if (typeof cursor !== 'string') {
      return Promise.reject(argumentError('cursor', 'must be a string'))
    }
    return this.#call(() => this.#native.countPage(cursor))
  }

  /** Closes the connection; calls in flight settle, later calls fail with `ERR_CLOSED`. */
  close() {
    // Calls made before close() in this turn are in flight too: hand them over first.
    this.#flush()
    return this.#call(() => this.#native.close())
  }

  /** Starts a per-request operation; `cb`, or the returned Promise, gets its result. */
  #run(op, key, json, expiresAt, ttl, user, finish, cb) {
    if (typeof cb === 'function') {
      this.#submit(op, key, json, expiresAt, ttl, user, finish, cb)
      return undefined
    }
    return new Promise((resolve, reject) => {
      this.#submit(op, key, json, expiresAt, ttl, user, finish, (err, value) =>
        err ? reject(err) : resolve(value))
    })
  }

  #submit(op, key, json, expiresAt, ttl, user, finish, cb) {
    if (typeof key !== 'string') return fail(argumentError('sid', 'must be a string'), cb)
    // A lone surrogate would reach Rust as U+FFFD and name another sid's key.
    if (!key.isWellFormed()) return fail(argumentError('sid', 'must be well-formed UTF-16'), cb)

    const id = this.#freeIds.length > 0 ? this.#freeIds.pop() : this.#callbacks.length
    this.#callbacks[id] = cb
    this.#finishers[id] = finish
    this.#batch.add(op, id, key, json, expiresAt, ttl, user)
    // A call made while a batch of results is delivered goes at the end of it (#onBatch).
    if (!this.#flushScheduled && !this.#delivering) {
      this.#flushScheduled = true
      setImmediate(this.#flush)
    }
  }

  /** A batch that could not be handed over: each of its calls fails with `err`. */
  #refuseAll(ids, err) {
    // Its shape definitions may not have arrived either: define every shape anew.
    if (this.#encoder !== null) this.#encoder.reset()
    for (const id of ids) this.#finish(id, err)
  }

  /**
   * Results and link events from Rust: OUTCOME_LEN numbers each (id, status, length of its
   * value in `text`, -1 for none), the values following each other in `text`; and sessions
   * read that came cut (SHAPED_LEN numbers, then their slots, their text in `texts`). The
   * first `count` of `numbers` are this batch's: the array is reused by the next one.
   */
  #onBatch(numbers, count, text, texts) {
    this.#delivering = true
    try {
      this.#deliver(numbers, count, text, texts)
    } finally {
      this.#delivering = false
    }
    // The calls these results led to go now, not after the rest of the turn's I/O: Redis
    // gets them while this thread goes on with the next batch.
    if (!this.#batch.isEmpty) this.#flush()
  }

  #deliver(numbers, count, text, texts) {
    let at = 0
    let cut = 0
    for (let i = 0; i < count;) {
      const status = numbers[i + 1]
      if (status === STATUS_SHAPED) {
        this.#finishShaped(numbers[i], numbers[i + 2], texts[cut++], numbers, i + SHAPED_LEN)
        i += SHAPED_LEN + numbers[i + 3]
        continue
      }
      const length = numbers[i + 2]
      let value = null
      if (length >= 0) {
        value = text.slice(at, at + length)
        at += length
      }
      if (status === STATUS_OK) this.#finish(numbers[i], null, value)
      else if (status === STATUS_FAILED) this.#finish(numbers[i], errorFrom(value), null)
      else if (status === STATUS_SHAPE) this.#defineShape(numbers[i], value)
      else if (status === STATUS_CONNECTED) this.#linkEvent('connect')
      else if (status === STATUS_DISCONNECTED) this.#linkEvent('disconnect', value)
      i += OUTCOME_LEN
    }
  }

  #defineShape(number, descriptor) {
    try {
      this.#shapes[number] = shapeBuilder(descriptor)
    } catch (err) {
      this.#shapes[number] = null
      this.#report(new StoreError('ERR_INTERNAL', `a session shape was refused: ${err.message}`))
    }
  }

  /** A read whose session came cut: built by its shape's builder, no JSON parsed. */
  #finishShaped(id, shape, text, numbers, at) {
    const builder = this.#shapes[shape]
    let session
    try {
      if (!builder) throw new Error(`shape ${shape} is unknown`)
      session = builder.build(text, numbers, at)
    } catch (err) {
      const failure = `a session read could not be built (${err.message})`
      return this.#finish(id, new StoreError('ERR_INTERNAL', failure), null)
    }
    const cb = this.#callbacks[id]
    this.#take(id)
    invoke(cb, null, session)
  }

  #linkEvent(event, reason) {
    if (this.#log !== null) {
      if (event === 'connect') this.#log.debug('connected to Redis')
      else this.#log.warn(`lost the connection to Redis (${reason}); reconnecting`)
    }
    guarded(() => this.emit(event, reason))
  }

  #finish(id, err, value) {
    const cb = this.#callbacks[id]
    const finish = this.#take(id)
    if (err !== null && this.#log !== null) this.#logFailure(err)
    finish.call(this, err, value, cb)
  }

  /** Warns of signs of tampering, reports backend failures; the messages carry no data. */
  #logFailure(err) {
    if (err.code === 'ERR_DECRYPT') {
      this.#log.warn('a stored session did not decrypt: tampered, moved, or a retired key')
    } else if (err.code === 'ERR_INVALID_ARG') {
      this.#log.debug(`refused a call: ${err.message}`)
    } else {
      this.#log.error(`${err.code}: ${err.message}`)
    }
  }

  #take(id) {
    const finish = this.#finishers[id]
    this.#callbacks[id] = undefined
    this.#finishers[id] = undefined
    this.#freeIds.push(id)
    return finish
  }

  /** The user id recorded in the index for `session`, when the index is kept. */
  #owner(session) {
    if (!this.#userIndex) return null
    const owner = ownerOf(session)
    return owner !== null && owner.isWellFormed() ? owner : null
  }

  /** The indexed sessions of `user`, sorted out: `mine`, `pending` (not written yet). */
  async #userSessions(user) {
    const rows = await this.#call(() => this.#native.userSessions(user))
    const mine = []
    const pending = []
    const foreign = []
    for (const row of rows) {
      if (row.json === null) {
        pending.push(row.sid)
        continue
      }
      const session = this.#parse(row.json)
      if (session !== null && ownerOf(session) === user) mine.push(row)
      else foreign.push(row.sid)
    }
    if (foreign.length > 0) {
      await this.#call(() => this.#native.forgetUserSessions(user, foreign))
    }
    return { mine, pending }
  }

  /** A session ended somewhere: every listener hears it; a throwing one is reported. */
  #sessionEnded(sid, reason) {
    const event = Object.freeze({ sid, reason })
    for (const listener of this.#endListeners.slice()) {
      try {
        const returned = listener(event)
        if (returned && typeof returned.then === 'function') {
          returned.then(undefined, (err) => this.#report(err))
        }
      } catch (err) {
        this.#report(err)
      }
    }
  }

  /** For reads: parse the JSON; a value that does not decrypt reads as no session. */
  #finishSession(err, json, cb) {
    if (err !== null) {
      if (err.code !== 'ERR_DECRYPT') return invoke(cb, err)
      this.#report(err)
      return invoke(cb, null, null)
    }
    invoke(cb, null, this.#parse(json))
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

  /** Runs a native async call, turning a synchronous throw into a rejection and coding errors. */
  #call(fn) {
    try {
      return fn().catch((err) => {
        throw fromNative(err)
      })
    } catch (err) {
      return Promise.reject(fromNative(err))
    }
  }

  /**
   * What `set` writes of the session: its shape's values, `{ shape, texts, numbers }`, or
   * its JSON when it is to be left to the serializer (see lib/session-encoder.js). The
   * values are the encoder's arrays of this call: a later call makes new ones, so
   * application code running before they are recorded (a `ttl` function, a getter) cannot
   * change them.
   */
  #written(session) {
    if (session === null || typeof session !== 'object') {
      throw argumentError('session', 'must be an object')
    }
    let shape = -1
    let json
    try {
      if (this.#encoder !== null) shape = this.#encoder.encode(session)
      if (shape < 0) json = this.#serializer.stringify(session)
    } catch (err) {
      throw argumentError('session', `cannot be serialised (${err.message})`)
    }
    if (shape >= 0) return this.#encoded(shape)
    if (typeof json !== 'string') {
      throw argumentError('session', 'the serializer did not return a string')
    }
    return json
  }

  /** The values the encoder read, after the definitions of any shape it met first. */
  #encoded(shape) {
    for (const { number, letters, literals } of this.#encoder.takeDefinitions()) {
      this.#batch.define(number, letters, literals)
    }
    return { shape, texts: this.#encoder.texts, numbers: this.#encoder.numbers }
  }

  /** `{ expiresAt, ttl }` for the native store: cookie expiry (epoch ms) or TTL (s). */
  #lifetime(session) {
    if (this.#disableTTL) return NO_LIFETIME
    const expiresAt = cookieExpiry(session)
    if (expiresAt !== null) return { expiresAt, ttl: null }
    const ttl = typeof this.#ttl === 'function' ? this.#ttl(session) : this.#ttl
    if (typeof ttl !== 'number' || Number.isNaN(ttl)) {
      throw argumentError('ttl', 'the ttl function must return a number of seconds')
    }
    return { expiresAt: null, ttl }
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

  /** Emits `error` only when someone listens: an unheard `error` would crash the process. */
  #report(err) {
    if (this.listenerCount('error') > 0) guarded(() => this.emit('error', err))
  }
}

const NO_LIFETIME = Object.freeze({ expiresAt: null, ttl: null })

/** The socket.io room that ties sockets to their session. */
const SOCKET_ROOM = 'sealed-redis-session:'

/** The `userId` of a session as the index records it: a string, or null when it has none. */
function ownerOf(session) {
  const userId = session !== null && typeof session === 'object' ? session.userId : undefined
  if (userId === undefined || userId === null || userId === '') return null
  return String(userId)
}

function userIdArgument(userId) {
  const ok = (typeof userId === 'string' && userId !== '') ||
    (typeof userId === 'number' && Number.isFinite(userId))
  if (!ok) throw argumentError('userId', 'must be a non-empty string or a number')
  return String(userId)
}

/** The namespaces of a socket.io `Server` (with future ones), or one `Namespace`. */
function socketNamespaces(io) {
  const isServer = io && io._nsps instanceof Map && typeof io.of === 'function'
  const isNamespace = io && io.sockets instanceof Map && typeof io.in === 'function'
  if (!isServer && !isNamespace) {
    throw argumentError('io', 'must be a socket.io Server or Namespace')
  }
  const present = isServer ? [...io._nsps.values()] : [io]
  return {
    present,
    future: isServer ? io : null,
    all: () => (isServer ? io._nsps.values() : present),
  }
}

function addPage(totals, page) {
  totals.sessions += page.sessions
  totals.tombstones += page.tombstones
  totals.sessionBytes += page.sessionBytes
  for (const ttl of page.ttlsMs) totals.ttlsMs.push(ttl)
  for (const id of page.keyIds) {
    const name = id === '' ? 'unreadable' : id
    totals.keyIds[name] = (totals.keyIds[name] || 0) + 1
  }
}

/** For writes: nothing to return. */
function finishPlain(err, _value, cb) {
  invoke(cb, err)
}

/** Delivers `err` to `cb` on a later tick, or returns it as a rejected Promise. */
function fail(err, cb) {
  if (typeof cb !== 'function') return Promise.reject(err)
  process.nextTick(invoke, cb, err)
  return undefined
}

/** Delivers success to `cb` on a later tick, or returns a resolved Promise. */
function succeed(cb) {
  if (typeof cb !== 'function') return Promise.resolve()
  process.nextTick(invoke, cb, null)
  return undefined
}

/** Runs a listener call so that a throw cannot cut a batch short: it is rethrown later. */
function guarded(fn) {
  try {
    fn()
  } catch (thrown) {
    process.nextTick(() => {
      throw thrown
    })
  }
}

/** The cookie's `expires` in epoch ms, or null when it has none (a Date, or its JSON). */
function cookieExpiry(session) {
  const expires = session && session.cookie ? session.cookie.expires : undefined
  if (expires === undefined || expires === null || expires === false) return null
  if (!(expires instanceof Date) && typeof expires !== 'string' && typeof expires !== 'number') {
    throw argumentError('session', '`cookie.expires` must be a Date, a string or a number')
  }
  const at = expires instanceof Date ? expires.getTime() : new Date(expires).getTime()
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
