'use strict'

/**
 * The calls of one turn of the event loop, in the form the native `flushOps` reads
 * (src/batch_wire.rs): one text (the strings of every call, one after the other), RECORD_LEN
 * numbers per call, and the values of the sessions written as their shape's values (see
 * session-encoder.js). A call's numbers: its operation, its id, the lengths (UTF-16 code
 * units, -1 for none) of its key, its JSON and its user id, the cookie's expiry, the TTL, and
 * the number of its session's shape (NaN for none).
 */

/** Numbers per call. */
const RECORD_LEN = 8

/** Not an operation: the definition of a shape, recorded ahead of the calls using it. */
const OP_DEFINE_SHAPE = 5

class RequestBatch {
  #texts = []
  #records = new Float64Array(RECORD_LEN * 256)
  #count = 0
  #values = new Float64Array(1024)
  #valueCount = 0

  /** Whether no call was added since the last `take`. */
  get isEmpty() {
    return this.#count === 0
  }

  /**
   * Adds one call. `json` is the session's JSON, its shape's values `{ shape, texts,
   * numbers }`, or null; `expiresAt` and `ttl` may be null.
   */
  add(op, id, key, json, expiresAt, ttl, user) {
    const encoded = json !== null && typeof json === 'object'
    let at = this.#nextRecord()
    const records = this.#records
    records[at++] = op
    records[at++] = id
    records[at++] = this.#text(key)
    records[at++] = encoded ? this.#encoded(json) : this.#text(json)
    records[at++] = this.#text(user)
    records[at++] = expiresAt === null ? NaN : expiresAt
    records[at++] = ttl === null ? NaN : ttl
    records[at] = encoded ? json.shape : NaN
  }

  /** Adds the definition of shape `number`: its slot kinds and its literal pieces. */
  define(number, letters, literals) {
    let at = this.#nextRecord()
    const records = this.#records
    records[at++] = OP_DEFINE_SHAPE
    records[at++] = number
    records[at++] = this.#text(letters)
    records[at++] = -1 // no JSON
    records[at++] = -1 // no user id
    records[at++] = NaN // no expiry
    records[at++] = NaN // no TTL
    records[at] = NaN // no shape
    for (const literal of literals) this.#value(this.#text(literal))
  }

  /**
   * The batch as `flushOps` takes it, `{ text, records, values }`; the next call starts a
   * new batch, in the same arrays: read `records` before adding to the batch again.
   */
  take() {
    const text = this.#texts.length === 1 ? this.#texts[0] : this.#texts.join('')
    const records = this.#records.subarray(0, this.#count * RECORD_LEN)
    const values = this.#values.subarray(0, this.#valueCount)
    this.#texts = []
    this.#count = 0
    this.#valueCount = 0
    return { text, records, values }
  }

  /** Where the next record starts, growing the records when they are full. */
  #nextRecord() {
    const at = this.#count * RECORD_LEN
    if (at === this.#records.length) this.#records = grown(this.#records)
    this.#count++
    return at
  }

  /** Queues a string; its length in UTF-16 code units, -1 for none. */
  #text(value) {
    if (value === null) return -1
    this.#texts.push(value)
    return value.length
  }

  #value(number) {
    if (this.#valueCount === this.#values.length) this.#values = grown(this.#values)
    this.#values[this.#valueCount++] = number
  }

  /** Queues the values of an encoded session; -1, the length of the JSON it has not. */
  #encoded({ texts, numbers }) {
    for (let i = 0; i < texts.length; i++) this.#texts.push(texts[i])
    for (let i = 0; i < numbers.length; i++) this.#value(numbers[i])
    return -1
  }
}

function grown(array) {
  const bigger = new Float64Array(array.length * 2)
  bigger.set(array)
  return bigger
}

/** The ids of the calls in taken `records`, leaving out shape definitions. */
function callIds(records) {
  const ids = []
  for (let at = 0; at < records.length; at += RECORD_LEN) {
    if (records[at] !== OP_DEFINE_SHAPE) ids.push(records[at + 1])
  }
  return ids
}

module.exports = { RequestBatch, callIds }
