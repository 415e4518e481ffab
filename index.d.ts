import { Store, SessionData } from 'express-session'
import type { IncomingMessage } from 'node:http'

declare module 'express-session' {
  interface SessionData {
    /** The logged-in user, set by `RedisStore#saveSession`. */
    userId?: string
  }
}

/** Turns a session into text and back; defaults to `JSON`. */
export interface Serializer {
  stringify(value: unknown): string
  parse(text: string): any
}

export interface RedisStoreOptions {
  /** The express-session secret(s): the first signs, all verify. Required. */
  secret: string | string[]
  /**
   * `redis://` or `rediss://` URL, with optional user, password and database number.
   * Default: `process.env.REDIS_URL`, else `redis://127.0.0.1:6379`.
   */
  url?: string
  /** Seed node URLs of a Redis Cluster; when given, `url` is not used. */
  cluster?: string[]
  /** Replicas that must have each write before it is acknowledged (Redis `WAIT`). */
  waitReplicas?: number
  /** How long Redis waits for them, in milliseconds; below `commandTimeout`. Default 500. */
  waitTimeout?: number
  /** Sentinel URLs and the name of the primary they monitor; when given, `url` is not used. */
  sentinel?: { nodes: string[]; masterName: string }
  /**
   * Certificates for `rediss://`, as PEM strings or Buffers: `ca` (default: the system's
   * trust store), and `cert` with `key` for servers that require a client certificate.
   */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer }
  /** Key of a session is `prefix + sid`. Default `'session:'`. */
  prefix?: string
  /**
   * Lifetime in seconds used when the cookie has no `expires`, or a function of the session
   * returning it. Default `86400` (one day).
   */
  ttl?: number | ((session: SessionData) => number)
  /**
   * 32-byte AES-256-GCM keys, as Buffers or base64 strings: the first encrypts, all decrypt.
   * Default: one key derived (HKDF-SHA256) from each `secret`, in the same order.
   */
  encryptionKeys?: Array<Buffer | Uint8Array | string>
  /** Name of the session cookie read by the cookie helpers. Default `'connect.sid'`. */
  cookieName?: string
  /** `touch` does nothing. Default `false`. */
  disableTouch?: boolean
  /** Keys are written without expiry, and `touch` does nothing. Default `false`. */
  disableTTL?: boolean
  /** How sessions become text before encryption. Default `JSON`. */
  serializer?: Serializer
  /** Upper bound of one call, in milliseconds, including a wait for a connection. Default 2000. */
  commandTimeout?: number
  /** Upper bound of one connection attempt, in milliseconds. Default 2000. */
  connectTimeout?: number
  /** Cap of the reconnection backoff, in milliseconds. Default 500. */
  reconnectMaxDelay?: number
  /** Largest serialised session accepted, in bytes. Default 1048576 (1 MiB). */
  maxSessionBytes?: number
  /** `COUNT` hint of each SCAN step in `all`, `ids`, `length`, `clear`. Default 1000. */
  scanCount?: number
  /**
   * Seconds during which a destroyed session refuses late writes (`set`, `touch`) from
   * requests that loaded it before the logout. Default 300.
   */
  tombstoneTtl?: number
  /**
   * Microseconds the native side keeps looking for the next call after each one, instead of
   * sleeping until woken: lower latency for some CPU of a background thread. 0 to 1000;
   * 0 never looks. Default 100.
   */
  busyPollMicros?: number
  /**
   * Where log lines go (`console`, pino, ...). Default: none, unless `DEBUG` names
   * `sealed-redis-session`, which logs to stderr.
   */
  logger?: Logger
  /**
   * Keep a per-user index of sessions (by `session.userId`), for `listUserSessions` and
   * `destroyUserSessions`. Costs one more Redis command per `set` and `touch`. Default `false`.
   */
  userIndex?: boolean
  /** Prefix of the per-user index keys. Default `'user-sessions:' + prefix`. */
  userIndexPrefix?: string
  /**
   * Read the plaintext sessions connect-redis stored under this prefix (its default is
   * `'sess:'`) and seal each on its next write. Opt-in, for the migration period only.
   */
  legacyPrefix?: string
}

/** One live session of a user (`listUserSessions`). */
export interface UserSession {
  sid: string
  /** Milliseconds left; -1 without expiry. */
  ttlMs: number
  /** When the session was last saved or touched. */
  lastWrite: Date
}

/** A session that ended somewhere (`onSessionEnd`). */
export interface SessionEnd {
  sid: string
  /** `expired` and `evicted` need keyspace notifications (`notify-keyspace-events Ex`). */
  reason: 'destroyed' | 'expired' | 'evicted'
}

/** What `closeSocketsOnSessionEnd` needs of a socket.io `Server` or `Namespace`. */
export type SocketIoTarget = { in(room: string): unknown; on(event: any, listener: any): unknown }

/** The levels the store logs at; a logger with only `log` or `info` works too. */
export interface Logger {
  debug?(message: string): void
  warn?(message: string): void
  error?(message: string): void
  log?(message: string): void
  info?(message: string): void
}

/** What `inspect` finds for one sid. */
export interface Inspection {
  kind: 'missing' | 'tombstone' | 'session' | 'undecryptable'
  /** Milliseconds left; -1 without expiry, -2 when there is no key. */
  ttlMs: number
  /** The decrypted session, when `kind` is `session`. */
  session: SessionData | null
  /** Hex fingerprint of the key that sealed the value, when readable. */
  keyId: string | null
}

/** Counters of `stats()`, since the store started. */
export interface StoreCounters {
  /** Reads that found a session. */
  hits: number
  /** Reads that found none (missing, expired, destroyed). */
  misses: number
  /** Calls that failed on Redis. */
  errors: number
  /** Reads served from connect-redis plaintext sessions (`legacyPrefix`), also in `hits`. */
  legacy: number
  /** Values that did not decrypt, by the hex id of the key that sealed them (or `unknown`). */
  undecryptable: Record<string, number>
}

/** Totals of `scanStats`. */
export interface ScanStats {
  sessions: number
  /** Destroyed sessions still refusing late writes. */
  tombstones: number
  /** `MEMORY USAGE` of all sessions, in bytes. */
  sessionBytes: number
  /** Milliseconds left of each session (-1: no expiry). */
  ttlsMs: number[]
  /** Sessions per sealing key fingerprint (`unreadable` for values without a header). */
  keyIds: Record<string, number>
}

/** One step of key rotation (`rotatePage`). */
export interface RotationPage {
  /** Cursor of the next step; `'0'` when the walk is over. */
  cursor: string
  /** Sessions (string keys) this step found. */
  scanned: number
  /** Re-sealed with the first key and written back, TTL kept. */
  rotated: number
  /** Sealed with the first key already: left alone. */
  alreadyCurrent: number
  /** Rewritten, destroyed or expired by live traffic before the write-back: left alone. */
  changedMeanwhile: number
  /** Open with none of the keys: left alone. */
  undecryptable: number
  /** Hex fingerprint of the first key, as `scanStats().keyIds` and `inspect` show it. */
  keyId: string
}

/** One step of counting the sessions under the prefix (`countPage`). */
export interface CountPage {
  /** Cursor of the next step; `'0'` when the walk is over. */
  cursor: string
  /** Sessions (string keys) this step found. */
  keys: number
}

/** A session returned by `all`, with its id. */
export type SessionWithId = SessionData & { id: string }

type Callback<T> = (err: any, value?: T) => void

/**
 * An express-session store over Redis whose values are encrypted with AES-256-GCM.
 * Every method takes a node-style callback, or returns a Promise when it is omitted.
 * Errors carry a stable `code`: `ERR_REDIS`, `ERR_REDIS_TIMEOUT`, `ERR_REDIS_WAIT`, `ERR_CLOSED`,
 * `ERR_INVALID_ARG`, `ERR_INVALID_OPTION`, `ERR_DECRYPT` (events only), `ERR_INTERNAL`.
 */
export declare class RedisStore extends Store {
  constructor(options: RedisStoreOptions)

  /** The key prefix in use. */
  readonly prefix: string
  /** The session cookie name in use. */
  readonly cookieName: string

  get(sid: string, callback: Callback<SessionData | null>): void
  get(sid: string): Promise<SessionData | null>
  set(sid: string, session: SessionData, callback: Callback<void>): void
  set(sid: string, session: SessionData): Promise<void>
  touch(sid: string, session: SessionData, callback: Callback<void>): void
  touch(sid: string, session: SessionData): Promise<void>
  destroy(sid: string, callback: Callback<void>): void
  destroy(sid: string): Promise<void>
  all(callback: Callback<SessionWithId[]>): void
  all(): Promise<SessionWithId[]>
  length(callback: Callback<number>): void
  length(): Promise<number>
  ids(callback: Callback<string[]>): void
  ids(): Promise<string[]>
  clear(callback: Callback<void>): void
  clear(): Promise<void>

  /**
   * The session named by the signed session cookie in a raw `Cookie` header (as seen on a
   * WebSocket upgrade); `null` when the cookie is missing, badly signed or unknown.
   */
  getSessionFromRawCookie(rawCookie: string | undefined | null): Promise<SessionData | null>
  /** The `userId` of the session named by `req.headers.cookie`, or `null`. */
  getUserIdFromCookie(req: Pick<IncomingMessage, 'headers'>): Promise<string | null>
  /** Regenerates the session id (against fixation), sets `req.session.userId`, saves. */
  saveSession(req: { session: import('express-session').Session }, userId: string): Promise<void>
  /** Removes the session `sid`. */
  destroySession(sid: string): Promise<void>
  /** Counters since the store started: hits, misses, errors, undecryptable values by key. */
  stats(): StoreCounters
  /** What is stored for `sid`, decrypted when possible. For support work: personal data. */
  inspect(sid: string): Promise<Inspection>
  /** Walks every key under the prefix with SCAN; `onPage` sees the totals after each step. */
  scanStats(onPage?: (totalsSoFar: ScanStats) => void): Promise<ScanStats>
  /**
   * One step of key rotation from `cursor` (`'0'` to start): re-seals with the first key the
   * sessions of one SCAN step, each only if unchanged since read, keeping its TTL.
   */
  rotatePage(cursor?: string): Promise<RotationPage>
  /** One step of counting the sessions under the prefix from `cursor` (`'0'` to start). */
  countPage(cursor?: string): Promise<CountPage>
  /** The live sessions of `userId`, from the per-user index (needs `userIndex: true`). */
  listUserSessions(userId: string | number): Promise<UserSession[]>
  /**
   * Logs `userId` out everywhere (needs `userIndex: true`); resolves to how many live
   * sessions ended. Each end reaches `onSessionEnd` listeners on every instance.
   */
  destroyUserSessions(userId: string | number): Promise<number>
  /**
   * Calls `listener` whenever a session ends on any instance sharing this Redis; returns a
   * function that removes it.
   */
  onSessionEnd(listener: (end: SessionEnd) => void | Promise<void>): () => void
  /**
   * Resolves to `true` once every subscription for session ends is in place (one per
   * primary on a cluster), `false` if they are not within the timeouts (Redis down).
   */
  sessionEndsReady(): Promise<boolean>
  /**
   * Disconnects the sockets of every session that ends, on any instance: give it the
   * socket.io `Server` (all namespaces) or one `Namespace`. Returns a function that stops it.
   */
  closeSocketsOnSessionEnd(io: SocketIoTarget): () => void
  /** Closes the connection; calls in flight settle, later calls fail with `ERR_CLOSED`. */
  close(): Promise<void>

  on(event: 'connect', listener: () => void): this
  on(event: 'disconnect', listener: (reason: string) => void): this
  on(event: 'error', listener: (err: Error & { code?: string }) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

/** Byte-identical to `require('cookie-signature').sign(value, secret)`. */
export declare function sign(value: string, secret: string): string

/**
 * `cookie-signature`'s `unsign`, tried against each secret in order (constant-time).
 * Returns the unsigned value, or `false`. Never throws on malformed input.
 */
export declare function unsign(input: string, secret: string | string[]): string | false
